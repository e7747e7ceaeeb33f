"""The `sensing` command: one file per command group."""
