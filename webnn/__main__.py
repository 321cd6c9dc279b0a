"""``python -m webnn``: the ``wnn`` command line (same commands, options and exit statuses)."""

from webnn.cli import main

if __name__ == "__main__":
    main(prog_name="wnn")
