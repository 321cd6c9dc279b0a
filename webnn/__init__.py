"""webnn: train neural networks across volunteers' web browsers with asynchronous weight merging."""

__version__ = "0.1.0"
