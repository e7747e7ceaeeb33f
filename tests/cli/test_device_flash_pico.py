"""`sensing device flash` for Picos: UF2 files checked, then copied to a folder that looks like a BOOTSEL drive,
or to the drive of a simulated board sent to BOOTSEL, which comes back running the MicroPython copied."""

import pytest
from typer.testing import CliRunner

from cli import flash as flashing
from cli.board import connected
from cli.main import app
from cli.provision import look_at
from tests.boards.uf2 import RP2040, RP2350_ARM_S, RP2350_RISCV, bootsel_drive, uf2_file

runner = CliRunner()
NAME = "RPI_PICO_W-20241129-v1.24.1.uf2"


def flash(*options: str, env: dict | None = None):
    return runner.invoke(app, ["device", "flash", *options], env=env)


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No BOOTSEL drive in the usual places: the search looks in an empty folder instead, where the simulated
    board's drive appears (tests/boards/conftest.py)."""
    media = tmp_path / "media"
    media.mkdir()
    monkeypatch.setenv("SENSING_DRIVE_SEARCH", str(media / "*"))
    return media


def firmware(tmp_path, data: bytes, name: str = NAME):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_uf2_is_copied_to_the_drive(tmp_path, nowhere):
    data = uf2_file(RP2040, blocks=40)
    drive = bootsel_drive(tmp_path / "RPI-RP2", "RP2040")

    result = flash("--firmware", str(firmware(tmp_path, data)), "--drive", str(drive))

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ MicroPython 1.24.1 copied to the RP2040 board at {drive}: it restarts into MicroPython by itself.\n"
    )
    assert (drive / NAME).read_bytes() == data


def test_the_drive_is_found_where_desktops_mount_it(tmp_path, nowhere):
    data = uf2_file(RP2350_ARM_S, blocks=8, e10_block=True)
    drive = bootsel_drive(nowhere / "RP2350", "RP2350")
    (nowhere / "USB-STICK").mkdir()  # a drive without INFO_UF2.TXT is not a board

    result = flash("--firmware", str(firmware(tmp_path, data, "RPI_PICO2_W-20250415-v1.25.0.uf2")))

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ MicroPython 1.25.0 copied to the RP2350 board at {drive}: it restarts into MicroPython by itself.\n"
    )
    assert (drive / "RPI_PICO2_W-20250415-v1.25.0.uf2").read_bytes() == data


def test_a_risc_v_build_is_taken_by_an_rp2350(tmp_path, nowhere):
    drive = bootsel_drive(tmp_path / "RP2350", "RP2350")
    result = flash("--firmware", str(firmware(tmp_path, uf2_file(RP2350_RISCV), "risc-v.uf2")), "--drive", str(drive))

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ risc-v.uf2 copied to the RP2350 board at {drive}: it restarts into MicroPython by itself.\n"
    )


@pytest.mark.parametrize(
    ("family", "chip", "sentence"),
    [
        (RP2040, "RP2350", "is for RP2040 boards, but this board is an RP2350 (a Pico 2 or Pico 2 W)"),
        (RP2350_ARM_S, "RP2040", "is for RP2350 (Arm) boards, but this board is an RP2040 (a Pico or Pico W)"),
    ],
)
def test_firmware_for_the_other_chip_is_refused(tmp_path, nowhere, family, chip, sentence):
    drive = bootsel_drive(tmp_path / "drive", chip)

    result = flash("--firmware", str(firmware(tmp_path, uf2_file(family))), "--drive", str(drive))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"✗ {NAME} {sentence}: use the firmware made for your board.\n"
    assert sorted(p.name for p in drive.iterdir()) == ["INDEX.HTM", "INFO_UF2.TXT"]


def test_the_board_named_must_be_the_board_plugged_in(tmp_path, nowhere):
    drive = bootsel_drive(tmp_path / "RP2350", "RP2350")

    result = flash(
        "--board", "RPI_PICO_W", "--firmware", str(firmware(tmp_path, uf2_file(RP2040))), "--drive", str(drive)
    )

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The board at {drive} is an RP2350 (a Pico 2 or Pico 2 W), not the RP2040 of RPI_PICO_W: "
        "say which board it is with --board.\n"
    )


@pytest.mark.parametrize(
    ("cut", "sentence"),
    [
        (lambda data: data[:-100], "is cut short (its size is not a whole number of UF2 blocks): download it again."),
        (lambda data: data[: 512 * 5], "is cut short or out of order (blocks missing): download it again."),
        (lambda data: data[512:], "is cut short or out of order (blocks missing): download it again."),
        (
            lambda data: b"<html>404 Not Found</html>\n",
            "is not a UF2 file: use the .uf2 file of MicroPython for your board.",
        ),
        (lambda data: data[:1020] + b"\x00" * 4 + data[1024:], "has a damaged block (block 1): download it again."),
    ],
    ids=["part-block", "blocks-missing", "first-block-missing", "not-uf2", "damaged"],
)
def test_a_broken_file_is_refused_before_looking_for_a_board(tmp_path, nowhere, cut, sentence):
    result = flash("--firmware", str(firmware(tmp_path, cut(uf2_file(RP2040, blocks=12)))))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"✗ {NAME} {sentence}\n"


def test_no_board_found(tmp_path, nowhere):
    result = flash("--firmware", str(firmware(tmp_path, uf2_file(RP2040))))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ No Pico in BOOTSEL mode was found: hold its BOOTSEL button while plugging it in, "
        "or give --port if it runs MicroPython already.\n"
    )


def test_two_boards_in_bootsel_are_not_guessed_between(tmp_path, nowhere):
    one, two = bootsel_drive(nowhere / "RPI-RP2", "RP2040"), bootsel_drive(nowhere / "RPI-RP2 1", "RP2040")

    result = flash("--firmware", str(firmware(tmp_path, uf2_file(RP2040))))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"✗ Several boards are in BOOTSEL mode ({one}, {two}): say which with --drive.\n"


def test_a_drive_that_is_no_pico(tmp_path, nowhere):
    stick = tmp_path / "USB-STICK"
    stick.mkdir()

    result = flash("--firmware", str(firmware(tmp_path, uf2_file(RP2040))), "--drive", str(stick))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ {stick} is not the drive of a Pico in BOOTSEL mode (it has no INFO_UF2.TXT naming one).\n"
    )


def micropython_at(port: str) -> tuple[str, str]:
    with connected(port) as board:
        state = look_at(board)
    return state["version"], state["machine"]


@pytest.mark.parametrize("simulated_board", ["RPI_PICO2_W"], indirect=True)
def test_a_board_running_micropython_is_sent_to_bootsel_first(simulated_board, tmp_path, nowhere):
    (simulated_board.root / "main.py").write_text("print('kept')\n")
    data = uf2_file(RP2350_ARM_S, blocks=30, e10_block=True, version="1.25.0")
    name = "RPI_PICO2_W-20250415-v1.25.0.uf2"

    result = flash("--board", "RPI_PICO2_W", "--firmware", str(firmware(tmp_path, data, name)),
                   "--port", simulated_board.port)  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    drive = nowhere / "RP2350"
    assert result.stdout == (
        f"✓ MicroPython 1.25.0 copied to the RP2350 board at {drive}: it restarts into MicroPython by itself.\n"
    )
    # Its bootrom took every block, and the board restarted: the drive gone, MicroPython 1.25.0 at a port, its
    # files kept.
    port = simulated_board.wait_at_port()
    assert (micropython_at(port), drive.exists()) == (("1.25.0", "Raspberry Pi Pico 2 W with RP2350"), False)
    assert (simulated_board.root / "main.py").read_text() == "print('kept')\n"


def test_a_drive_already_there_is_another_boards(simulated_board, tmp_path, nowhere):
    waiting = bootsel_drive(nowhere / "RPI-RP2", "RP2040")  # a new Pico, without MicroPython, plugged in too
    name = "RPI_PICO_W-20250415-v1.25.0.uf2"
    data = uf2_file(RP2040, blocks=30, version="1.25.0")

    result = flash("--board", "RPI_PICO_W", "--firmware", str(firmware(tmp_path, data, name)),
                   "--port", simulated_board.port)  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ MicroPython 1.25.0 copied to the RP2040 board at {nowhere / 'RPI-RP21'}: it restarts into MicroPython "
        "by itself.\n"
    )
    assert micropython_at(simulated_board.wait_at_port())[0] == "1.25.0"
    assert sorted(path.name for path in waiting.iterdir()) == ["INDEX.HTM", "INFO_UF2.TXT"]


def test_a_port_without_a_board_is_told(tmp_path, nowhere):
    result = flash("--firmware", str(firmware(tmp_path, uf2_file(RP2040))), "--port", str(tmp_path / "ttyACM9"))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ There is no board at {tmp_path / 'ttyACM9'}: check that it is plugged in and that the port is right.\n"
    )


# `sensing workshop run` flashes through the same functions with options=False: it has no --drive or --board,
# so its sentences must not name them.


def test_in_a_workshop_boards_in_bootsel_at_once_are_told_apart_by_unplugging_not_by_an_option(nowhere, monkeypatch):
    def two_drives_appear(port):  # the board sent to BOOTSEL, and another plugged in with its button held
        bootsel_drive(nowhere / "RPI-RP2", "RP2040")
        bootsel_drive(nowhere / "RPI-RP2 1", "RP2040")

    monkeypatch.setattr(flashing, "into_bootsel", two_drives_appear)

    with pytest.raises(flashing.FlashError) as failed:
        flashing.find_drive(None, "/dev/ttyACM0", lambda *progress: None, options=False)

    assert str(failed.value) == (
        f"Several boards came into BOOTSEL mode at once ({nowhere / 'RPI-RP2'}, {nowhere / 'RPI-RP2 1'}), so which "
        "is the one from /dev/ttyACM0 cannot be told: unplug them all, plug them in again one at a time, and run "
        "this again."
    )


def test_in_a_workshop_a_board_of_another_chip_is_told_to_be_unplugged(tmp_path):
    drive = flashing.drive_at(bootsel_drive(tmp_path / "RP2350", "RP2350"))
    image = flashing.read_uf2(uf2_file(RP2040), NAME)

    with pytest.raises(flashing.FlashError) as failed:
        flashing.check_board(image, NAME, drive, ("RPI_PICO_W", "RP2040"), options=False)

    assert str(failed.value) == (
        f"The board at {drive.path} is an RP2350 (a Pico 2 or Pico 2 W), not the RP2040 of RPI_PICO_W: unplug it."
    )
