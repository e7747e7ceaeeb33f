"""`sensing device deploy`: copy the firmware to a board, skipping the files it already has.

The board's files are laid out as docs/firmware.md says: the files of firmware/ at the board's root (without
firmware/__init__.py), its subfolders (sensors/, ...) as folders. Libraries the board's MicroPython build
lacks come from cli/bundle/ (see its manifest.json) and go to /lib, so a workshop needs no network.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

import firmware
from cli.app import abort, console
from cli.board import Board, BoardError, Survey, connected, parent_dirs

FIRMWARE = Path(firmware.__file__).parent
BUNDLE = Path(__file__).parent / "bundle"


@dataclass(frozen=True)
class BoardFile:
    source: Path
    path: str  # where it goes on the board

    def data(self) -> bytes:
        return self.source.read_bytes()


@dataclass(frozen=True)
class Library:
    module: str  # what the board imports, e.g. "umqtt.simple"
    files: tuple[BoardFile, ...]


def board_file(path: Path, folder: Path) -> bool:
    """Code, and the board pin maps (boards/*.json: the firmware reads /boards/<its board>.json)."""
    relative = path.relative_to(folder)
    if "__pycache__" in relative.parts or relative == Path("__init__.py"):
        return False
    return path.suffix == ".py" or (relative.parent == Path("boards") and path.suffix == ".json")


def firmware_files(folder: Path) -> list[BoardFile]:
    """The firmware's files, at the same place under the board's root; the top __init__.py stays behind."""
    return [
        BoardFile(path, "/" + path.relative_to(folder).as_posix())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and board_file(path, folder)
    ]


def bundled_libraries(bundle: Path = BUNDLE) -> list[Library]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return [
        Library(entry["module"], tuple(BoardFile(bundle / name, "/lib/" + name) for name in entry["files"]))
        for entry in manifest["libraries"]
    ]


def libraries_needed(libraries: list[Library], survey: Survey) -> list[BoardFile]:
    """A library's files go to the board when its build lacks the module, or when we put them there before."""
    return [
        file
        for library in libraries
        if library.module in survey.missing or any(file.path in survey.files for file in library.files)
        for file in library.files
    ]


def unchanged(board: Board, file: BoardFile, survey: Survey) -> bool:
    if file.path not in survey.files:
        return False
    data = file.data()
    if survey.sha256:
        return survey.files[file.path] == hashlib.sha256(data).hexdigest()
    return survey.files[file.path] == len(data) and board.read_file(file.path) == data  # no hashlib on the board


Report = Callable[[str, int, int], None]  # (what is happening, bytes in all, bytes done)


def copy_files(board: Board, files: list[BoardFile], survey: Survey, report: Report) -> None:
    for folder in parent_dirs([file.path for file in files]):
        if folder not in survey.dirs:
            board.make_dir(folder)
    sizes = {file.path: len(file.data()) for file in files}
    total = sum(sizes.values())
    done = 0
    for file in files:
        what = f"Copying {file.path.lstrip('/')}"
        report(what, total, done)
        board.write_file(file.path, file.data(), lambda n, before=done, what=what: report(what, total, before + n))
        done += sizes[file.path]
        report(what, total, done)


def deploy_board(port: str, files: list[BoardFile], libraries: list[Library], report: Report) -> tuple[int, int]:
    """Copy to the board at `port` the files it lacks or has otherwise: (files it needs, files copied).
    BoardError on a failure."""
    with connected(port) as board:
        library_paths = [file.path for library in libraries for file in library.files]
        survey = board.survey([f.path for f in files] + library_paths, [lib.module for lib in libraries])
        wanted = files + libraries_needed(libraries, survey)
        to_copy = [file for file in wanted if not unchanged(board, file, survey)]
        copy_files(board, to_copy, survey, report)
    return len(wanted), len(to_copy)


def result_sentence(port: str, total: int, kept: int) -> str:
    if kept == total:
        return f"✓ The board at {port} already has all {total} files: nothing to copy."
    if kept == 0:
        return f"✓ Deployed {total} files to {port}."
    return f"✓ Deployed {total} files to {port} ({kept} unchanged)."


def deploy(
    port: str = typer.Option(
        ..., "--port", "-p", envvar="SENSING_PORT", help="The board's serial port, e.g. /dev/ttyACM0."
    ),
    firmware_folder: Path = typer.Option(
        FIRMWARE, "--firmware", help="The folder of firmware files to deploy (default: the toolkit's own).",
        exists=True, file_okay=False,
    ),
    bundle: Path = typer.Option(
        BUNDLE, "--bundle", help="A folder of libraries for boards whose MicroPython lacks them, with manifest.json.",
        exists=True, file_okay=False,
    ),
) -> None:
    """Copy the firmware to a board, skipping the files it already has."""
    files = firmware_files(firmware_folder)
    if not files:
        abort(f"There are no firmware files (.py) in {firmware_folder}.")
    try:
        libraries = bundled_libraries(bundle)
    except (OSError, ValueError, KeyError, TypeError):
        abort(f"The library bundle in {bundle} has no readable manifest.json: see cli/bundle/manifest.json.")
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    try:
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task(f"Looking at the board at {port}", total=None)

            def report(what: str, total: int, done: int) -> None:
                progress.update(task, description=what, total=total, completed=done)

            total, copied = deploy_board(port, files, libraries, report)
    except BoardError as e:
        abort(str(e))
    console.print(result_sentence(port, total, total - copied), highlight=False)
