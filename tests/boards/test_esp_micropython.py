"""The simulated ESP32 DevKit at a local port (tests/boards/esp_micropython.py): what its DTR and RTS do, and what it
boots from its flash."""

import time

import pytest
import serial

from cli.board import BoardError, connected
from cli.provision import look_at
from tests.boards.esp_micropython import EspMicroPythonBoard, micropython_bin, modem_lines
from tests.boards.esp_rom import BANNER


def reset(port: str) -> serial.Serial:
    """Open the port and pulse EN with RTS, IO0 left high (esptool's hard reset): the chip boots its firmware."""
    line = serial.Serial(port, 115200, timeout=0.5)  # opening asserts DTR, then RTS: EN stays high
    line.dtr = False
    line.rts = True  # EN low: held in reset
    line.rts = False
    return line


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not so within {seconds} s"
        time.sleep(0.01)


def test_a_blank_esp32_says_it_finds_no_program_and_nothing_more(tmp_path, micropython):
    with EspMicroPythonBoard(tmp_path / "fs", micropython) as board, modem_lines(board):
        with reset(board.port) as line:
            said = line.read(200)
            line.write(b"\r\x03\r\x01")  # Ctrl-C, Ctrl-A: nothing answers
            more = line.read(200)

        assert said == BANNER["firmware"] + b"invalid header: 0xffffffff\r\n" and more == b""
        assert (board.boots, board.installed, board.running) == (["firmware", "firmware"], None, None)
        with pytest.raises(BoardError, match="does not answer like a MicroPython board"):
            with connected(board.port):
                pass


def test_an_esp32_boots_the_micropython_in_its_flash(tmp_path, micropython):
    with EspMicroPythonBoard(tmp_path / "fs", micropython, firmware=micropython_bin("esp32", "1.24.1")) as board, \
            modem_lines(board):  # fmt: skip
        with connected(board.port) as found:
            before = look_at(found)
        board.flash[0x1000 : 0x1000 + 40_000] = micropython_bin("esp32", "1.25.0")  # as if esptool wrote it
        reset(board.port).close()
        wait_for(lambda: board.running == "1.25.0")
        with connected(board.port) as found:
            after = look_at(found)

    assert [(s["version"], s["machine"], s["platform"], s["id"]) for s in (before, after)] == [
        ("1.24.1", "Generic ESP32 module with ESP32", "esp32", board.unique_id),
        ("1.25.0", "Generic ESP32 module with ESP32", "esp32", board.unique_id),
    ]
    assert board.boots == ["firmware", "firmware"]


def test_an_image_for_another_chip_does_not_boot(tmp_path, micropython):
    with EspMicroPythonBoard(tmp_path / "fs", micropython, firmware=micropython_bin("esp32s3", "1.24.1")) as board:
        assert (board.installed, board.running) == (None, None)
