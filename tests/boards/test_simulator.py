"""The simulated board behaves like a MicroPython board at its serial port, for pyserial and for mpremote."""

import hashlib
import os
import time

import pytest
import serial
from mpremote.transport_serial import SerialTransport

from tests.boards.simulator import SimulatedBoard
from tests.boards.uf2 import RP2040, RP2350_ARM_S, uf2_file

WAIT = 10.0  # seconds: generous, a simulated board answers in milliseconds


def read_until(port: serial.Serial, ending: bytes) -> bytes:
    """What the board sent up to and including `ending`; fails the test if that does not come."""
    data = b""
    deadline = time.monotonic() + WAIT
    while not data.endswith(ending):
        if time.monotonic() > deadline:
            pytest.fail(f"no {ending!r} from the board; it sent {data!r}")
        data += port.read(1)
    return data


@pytest.fixture
def console(simulated_board):
    with serial.Serial(simulated_board.port, 115200, timeout=0.1) as port:
        yield port


@pytest.fixture
def transport(simulated_board):
    board = SerialTransport(simulated_board.port, 115200, timeout=1)
    board.enter_raw_repl(soft_reset=False)
    yield board
    board.exit_raw_repl()
    board.close()


def banner_from_start(console) -> bytes:
    """The banner, which Ctrl-B in the friendly REPL prints again (what the board printed at start went nowhere)."""
    console.write(b"\x02")
    return read_until(console, b">>> ")[2:]


def test_ctrl_d_soft_reboots_and_prints_the_banner(simulated_board, console):
    banner = banner_from_start(console)
    assert banner.startswith(b"MicroPython ")
    assert banner.endswith(b'\r\nType "help()" for more information.\r\n>>> ')

    console.write(b"x = 42\r")
    assert read_until(console, b">>> ") == b"x = 42\r\n>>> "
    console.write(b"\x04")

    assert read_until(console, b">>> ") == b"\r\nMPY: soft reboot\r\n" + banner
    console.write(b"print(x)\r")  # a soft reboot clears the REPL's variables, as on a board
    assert b"NameError: name 'x' isn't defined" in read_until(console, b">>> ")
    assert simulated_board.boots == 2


def test_soft_reboot_in_the_raw_repl_comes_back_to_the_raw_repl(simulated_board, console):
    banner_from_start(console)
    console.write(b"\r\x01")
    assert read_until(console, b"raw REPL; CTRL-B to exit\r\n>") == b"\r\n>>> \r\nraw REPL; CTRL-B to exit\r\n>"

    console.write(b"\x04")

    assert read_until(console, b">") == b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>"
    console.write(b"print(6 * 7)\x04")
    assert read_until(console, b">") == b"OK42\n\x04\x04>"
    console.write(b"1/0\x04")
    assert read_until(console, b"\x04>") == (
        b'OK\x04Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n'
        b"ZeroDivisionError: divide by zero\n\x04>"
    )


def test_main_py_runs_at_start_and_ctrl_c_stops_it(simulated_board, console):
    banner_from_start(console)
    (simulated_board.root / "main.py").write_text(
        "import time\nprint('sensing: started')\nwhile True:\n    time.sleep(0.01)\n"
    )
    console.write(b"\x04")
    assert read_until(console, b"started\n") == b"\r\nMPY: soft reboot\r\nsensing: started\n"

    console.write(b"\x03")

    interrupted = read_until(console, b">>> ")
    assert b'File "main.py", line ' in interrupted
    assert b"KeyboardInterrupt: \n" in interrupted
    assert interrupted.endswith(b'Type "help()" for more information.\r\n>>> ')


def test_machine_reset_restarts_without_a_soft_reboot_line(simulated_board, console):
    banner = banner_from_start(console)
    (simulated_board.root / "main.py").write_text("print('sensing: started')\n")

    console.write(b"import machine; machine.reset()\r")

    assert read_until(console, b">>> ") == b"import machine; machine.reset()\r\nsensing: started\n" + banner
    assert simulated_board.boots == 2


def test_mpremote_enters_the_raw_repl_with_a_soft_reset(simulated_board):
    board = SerialTransport(simulated_board.port, 115200, timeout=1)
    try:
        board.enter_raw_repl(soft_reset=True)
        assert board.eval("1 + 1") == 2
    finally:
        board.exit_raw_repl()
        board.close()
    assert simulated_board.boots == 2


@pytest.mark.parametrize(
    ("simulated_board", "platform", "machine"),
    [
        ("RPI_PICO_W", "rp2", "Raspberry Pi Pico W with RP2040"),
        ("ESP32_GENERIC", "esp32", "Generic ESP32 module with ESP32"),
    ],
    indirect=["simulated_board"],
)
def test_the_board_says_what_it_is(transport, platform, machine):
    assert transport.eval("__import__('sys').platform") == platform
    assert transport.eval("__import__('os').uname().machine") == machine


def test_files_written_by_mpremote_land_in_the_board_folder(simulated_board, transport):
    content = bytes(range(256)) * 5

    transport.fs_mkdir("/lib")
    transport.fs_writefile("/lib/data.bin", content)

    assert (simulated_board.root / "lib" / "data.bin").read_bytes() == content
    assert [(e.name, e.st_size) for e in transport.fs_listdir("/lib")] == [("data.bin", 1280)]
    assert transport.fs_hashfile("/lib/data.bin", "sha256") == hashlib.sha256(content).digest()
    assert transport.fs_readfile("/lib/data.bin") == content
    assert transport.eval("__import__('os').listdir('/')") == ["lib"]
    transport.fs_rmfile("/lib/data.bin")
    assert list((simulated_board.root / "lib").iterdir()) == []


@pytest.mark.parametrize("renumbered", [False, True], ids=["same-number-free", "number-taken"])
def test_a_pico_goes_through_bootsel_and_comes_back_running_the_micropython_copied(micropython, tmp_path,
                                                                                   renumbered):  # fmt: skip
    by_id, media = tmp_path / "by-id", tmp_path / "media"
    with SimulatedBoard(tmp_path / "flash", micropython, version="1.24.1", media=media, links=by_id,
                        renumbered=renumbered) as board:  # fmt: skip
        left, link = board.port, board.link
        assert (link.name, os.readlink(link)) == (f"usb-MicroPython_Board_in_FS_mode_{board.unique_id}-if00", left)
        board_said = SerialTransport(left, 115200, timeout=1)
        board_said.enter_raw_repl(soft_reset=False)
        assert board_said.eval("__import__('sys').implementation.version[:3]") == (1, 24, 1)
        assert board_said.eval("__import__('machine').unique_id().hex()") == board.unique_id
        board_said.exec_raw_no_follow("import machine; machine.bootloader()")
        board_said.close()
        deadline = time.monotonic() + WAIT
        while board.drive is None and time.monotonic() < deadline:
            time.sleep(0.01)

        # Its serial port is gone as a USB serial port goes (its number free, or another device's now); its drive
        # shows the chip.
        assert (board.port, os.path.exists(left), link.exists()) == (None, renumbered, False)
        assert (board.drive, (board.drive / "INFO_UF2.TXT").read_text().splitlines()[-1]) == (
            media / "RPI-RP2", "Board-ID: RPI-RP2")
        # A file for another chip, or one cut short, is taken by no bootrom: the board stays in BOOTSEL.
        (board.drive / "other.uf2").write_bytes(uf2_file(RP2350_ARM_S, blocks=8, version="1.26.0"))
        (board.drive / "short.uf2").write_bytes(uf2_file(RP2040, blocks=8, version="1.26.0")[:-512])
        time.sleep(0.3)
        assert (board.drive, board.port) == (media / "RPI-RP2", None)

        (board.drive / "firmware.uf2").write_bytes(uf2_file(RP2040, blocks=8, version="1.26.0"))
        port = board.wait_at_port()

        assert (list(media.iterdir()), os.readlink(link)) == ([], port)
        if renumbered:  # its number was another device's by then: it is back at another
            assert port != left
        board_said = SerialTransport(port, 115200, timeout=1)
        board_said.enter_raw_repl(soft_reset=False)
        assert board_said.eval("__import__('sys').implementation.version[:3]") == (1, 26, 0)
        assert board_said.eval("__import__('machine').unique_id().hex()") == board.unique_id
        board_said.exit_raw_repl()
        board_said.close()
    assert not link.exists()


def into_bootsel(board: SimulatedBoard) -> None:
    board_said = SerialTransport(board.port, 115200, timeout=1)
    board_said.enter_raw_repl(soft_reset=False)
    board_said.exec_raw_no_follow("import machine; machine.bootloader()")
    board_said.close()
    deadline = time.monotonic() + WAIT
    while board.drive is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert board.drive is not None


def version_at(port: str) -> tuple:
    board_said = SerialTransport(port, 115200, timeout=1)
    board_said.enter_raw_repl(soft_reset=False)
    try:
        return board_said.eval("__import__('sys').implementation.version[:3]")
    finally:
        board_said.exit_raw_repl()
        board_said.close()


def test_a_pico_lost_after_a_flash_has_no_port_until_it_is_plugged_in_again(micropython, tmp_path):
    media = tmp_path / "media"
    with SimulatedBoard(tmp_path / "flash", micropython, version="1.24.1", media=media,
                        lost_after_flash=True) as board:  # fmt: skip
        # Out of BOOTSEL with nothing copied: it starts the MicroPython it had.
        into_bootsel(board)
        assert version_at(board.replug()) == (1, 24, 1)
        assert (board.drive, list(media.iterdir())) == (None, [])

        into_bootsel(board)
        (board.drive / "firmware.uf2").write_bytes(uf2_file(RP2040, blocks=8, version="1.26.0"))
        deadline = time.monotonic() + WAIT
        while board.drive is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # written, its drive gone: and no port comes back
        assert (board.drive, board.port, board.version) == (None, None, "1.26.0")

        assert version_at(board.replug()) == (1, 26, 0)
