"""The `agl` command line: one module per subcommand, wired together in `main.py`."""

__all__: list[str] = []
