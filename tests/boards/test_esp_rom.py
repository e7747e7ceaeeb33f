"""The scripted ESP chip answers esptool as a chip would: its ROM loader, esptool's flasher stub once uploaded,
and the reset into the bootloader through a board's DTR/RTS circuit, locally and over RFC 2217."""

import contextlib
import hashlib
import io
import struct
import time

import esptool
import pytest
from esp_pylib.serial_reset import hard_reset, unix_tight_bootloader_reset
from esptool.cmds import detect_chip
from esptool.loader import StubFlasher
from esptool.util import FatalError

from tests.boards.esp_board import EN_RISE, EspBoard, Rfc2217Server, modem_control_of
from tests.boards.esp_rom import EspRomPeer, app_image
from tests.boards.esp_stub import esptool_stub

ROM_ONLY = ["--before", "no-reset", "--after", "no-reset", "--no-stub"]


def run_esptool(port: str, *argv: str, options=ROM_ONLY) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        esptool.main(["--port", port, *options, *argv])
    return out.getvalue()


@pytest.mark.parametrize(
    ("chip", "name"),
    [("esp32", "ESP32"), ("esp32s2", "ESP32-S2"), ("esp32s3", "ESP32-S3"), ("esp32c3", "ESP32-C3"),
     ("esp32c6", "ESP32-C6")],
)  # fmt: skip
def test_esptool_detects_the_chip_and_its_flash(chip, name):
    with EspRomPeer(chip=chip) as rom:
        out = run_esptool(rom.port, "flash-id")

    assert f"Connected to {name} on {rom.port}:" in out
    assert "Manufacturer: ef" in out and "Device: 4016" in out
    assert "Detected flash size: 4MB" in out


def test_esptool_writes_and_verifies_from_the_command_line(tmp_path):
    image = tmp_path / "app.bin"
    image.write_bytes(app_image(chip_id=9, size=5000))
    with EspRomPeer(chip="esp32s3") as rom:
        run_esptool(rom.port, "--baud", "230400", "write-flash", "0x10000", str(image))
        out = run_esptool(rom.port, "verify-flash", "0x10000", str(image))
        rom.flash[0x10000] ^= 0xFF
        with pytest.raises(esptool.FatalError, match="Verification failed"):
            run_esptool(rom.port, "verify-flash", "0x10000", str(image))

    assert "Verification successful (digest matched)." in out
    assert rom.bauds == [(230400, 0)]  # the ROM is told no old rate


# ------------------------------------------------------------------------------------------- the stub


@pytest.mark.parametrize("chip", ["esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6"])
def test_the_stub_is_loaded_where_its_json_says_and_then_answers(chip, tmp_path):
    image = tmp_path / "app.bin"
    image.write_bytes(app_image(chip_id={"esp32": 0, "esp32s2": 2, "esp32s3": 9, "esp32c3": 5, "esp32c6": 13}[chip]))
    stub = esptool_stub(chip)
    with EspRomPeer(chip=chip) as rom:
        out = run_esptool(rom.port, "--baud", "460800", "write-flash", "0x10000", str(image),
                          options=["--before", "no-reset", "--after", "no-reset-stub"])  # fmt: skip

    assert "Stub flasher running." in out and "Hash of data verified." in out
    assert rom.ram == {stub.text_start: stub.text, stub.data_start: stub.data}
    assert rom.commands[rom.commands.index("MEM_END") + 1 :] == rom.stub_commands  # from then on, the stub
    assert {"FLASH_DEFL_BEGIN", "FLASH_DEFL_DATA", "FLASH_DEFL_END"} <= set(rom.stub_commands)
    assert "FLASH_DATA" not in rom.commands and "FLASH_BEGIN" not in rom.commands
    assert rom.bauds == [(460800, 115200)]  # the stub is told the old rate too
    assert rom.flash[0x10000 : 0x10000 + image.stat().st_size] == image.read_bytes()


def connected(rom: EspRomPeer):
    with contextlib.redirect_stdout(io.StringIO()):
        esp = detect_chip(rom.port, connect_mode="no-reset")
    esp._port.timeout = 3  # esptool leaves it unset: its wait for the stub's greeting would never end
    return esp


def raw(esp, command: str, data: bytes = b"") -> tuple[int, bytes]:
    """The value and data of an answer, status bytes and all."""
    return esp.command(esp.ESP_CMDS[command], data)


def test_the_stub_answers_otherwise_than_the_rom():
    sync = b"\x07\x07\x12\x20" + b"\x55" * 32
    md5 = struct.pack("<IIII", 0, 0x1000, 0, 0)
    with EspRomPeer(chip="esp32c3") as rom:
        esp = connected(rom)
        rom_sync, rom_md5 = raw(esp, "SYNC", sync), raw(esp, "SPI_FLASH_MD5", md5)
        esp.flush_input()  # SYNC's seven further answers
        esp = esp.run_stub()
        stub_sync, stub_md5 = raw(esp, "SYNC", sync), raw(esp, "SPI_FLASH_MD5", md5)
        esp.flush_input()
        with pytest.raises(FatalError, match=r"^Failed to read flash \(result was C300: Invalid command\)$"):
            esp.check_command("read flash", esp.ESP_CMDS["READ_FLASH_SLOW"], b"\x00" * 8)  # a ROM command
        esp._port.close()

    digest = hashlib.md5(b"\xff" * 0x1000).digest()  # the first sector, erased
    assert rom_sync == (0x20120707, b"\x00\x00\x00\x00") and stub_sync == (0, b"\x00\x00")
    assert rom_md5 == (0, digest.hex().encode() + b"\x00\x00\x00\x00")  # 32 hex characters, 4 status bytes
    assert stub_md5 == (0, digest + b"\x00\x00")  # 16 raw bytes, 2 status bytes


def test_a_stub_upload_damaged_on_the_line_is_refused():
    with EspRomPeer(chip="esp32s3", noise="MEM_DATA") as rom:
        esp = connected(rom)
        with pytest.raises(FatalError, match=r"^Failed to write to target RAM \(result was 0107: Checksum error\)$"):
            esp.run_stub()
        esp._port.close()

    assert rom.commands[-2:] == ["MEM_BEGIN", "MEM_DATA"]  # refused at the first block
    assert rom.loader == "rom" and rom.stub_commands == []


def test_a_stub_loaded_elsewhere_does_not_start():
    stub = esptool_stub("esp32c6")
    with EspRomPeer(chip="esp32c6") as rom:
        esp = connected(rom)
        misplaced = StubFlasher(esp)
        misplaced.text_start += 0x100  # its code is position-dependent: run from there, it is garbage
        with pytest.raises(FatalError, match="^Failed to start stub flasher. There was no response."):
            esp.run_stub(misplaced)
        esp._port.close()

    assert rom.ram == {stub.text_start + 0x100: stub.text, stub.data_start: stub.data}
    assert rom.loader is None  # neither the ROM nor the stub answers any more


# ------------------------------------------------------------------------------------------- reset


def test_esptools_reset_sequence_starts_the_rom_loader_and_a_hard_reset_the_firmware():
    with EspBoard(chip="esp32") as board, modem_control_of(board):
        unix_tight_bootloader_reset(board)  # DTR and RTS set together, as esptool does on Linux and macOS
        time.sleep(2 * EN_RISE)
        in_loader = board.loader
        hard_reset(board)
        time.sleep(2 * EN_RISE)

    assert board.boots == ["download", "firmware"]
    assert in_loader == "rom" and board.loader is None


def test_a_reset_sequence_slower_than_the_reset_circuit_boots_the_firmware():
    """Between raising DTR and dropping RTS both lines are asserted, so EN rises with IO0 still high: a
    local reset is over long before EN's RC delay; one relayed over a network (one change per round trip)
    is not."""
    with EspBoard(chip="esp32") as board:
        board.dtr, board.rts = False, True  # EN low: in reset
        time.sleep(0.1)
        board.dtr = True  # EN released, IO0 not yet low
        time.sleep(5 * EN_RISE)
        board.rts = False  # IO0 low, too late
        time.sleep(0.05)
        board.dtr = False

    assert board.boots == ["firmware"]


def test_holding_boot_while_resetting_starts_the_rom_loader():
    with EspBoard(chip="esp32c3") as board:
        board.boot_button = True
        hard_reset(board)  # EN pulsed, as the RESET button would
        time.sleep(2 * EN_RISE)
        board.boot_button = False
        hard_reset(board)
        time.sleep(2 * EN_RISE)

    assert board.boots == ["download", "firmware"]


def test_through_a_plain_rfc2217_relay_esptool_finds_the_firmware_booted():
    with EspBoard(chip="esp32s3") as board, Rfc2217Server(board, espressif=False) as server:
        with pytest.raises(FatalError, match=r"Wrong boot mode detected \(0x13\)! The chip needs to be in download"):
            run_esptool(server.url, "flash-id",
                        options=["--before", "default-reset", "--connect-attempts", "1", "--no-stub"])  # fmt: skip

    assert board.boots == ["firmware", "firmware"]  # the client's connection, then esptool's reset
    assert board.commands == []
