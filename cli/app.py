"""What every command shares: the console, and `abort` for a failure told in one human sentence."""

from typing import NoReturn

import typer
from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def abort(sentence: str, code: int = 1) -> NoReturn:
    """Print one plain sentence saying what went wrong (and what to do), then exit non-zero."""
    err_console.print(f"[red]✗[/red] {sentence}", highlight=False)
    raise typer.Exit(code)
