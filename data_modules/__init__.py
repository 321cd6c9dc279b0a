"""Data modules shipped with webnn: `digits` (default), `mnist`, `text`.

Use them by path (``--data data_modules/digits.py``) or, from the repository root, by dotted name
(``--data data_modules.digits``).
"""
