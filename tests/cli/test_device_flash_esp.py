"""`sensing device flash` for ESP32-family boards: the real esptool (its Python API) talking to a scripted chip
(tests/boards/esp_rom.py) that keeps the flash: its ROM loader, and esptool's flasher stub once uploaded.

On a pty DTR/RTS do not work, so the tests there run with --no-reset: the board is taken to be in its bootloader
already, as with BOOT held at power-up. The reset into the bootloader (the default, --reset) is exercised with a
board behind an RFC 2217 server (tests/boards/esp_board.py), as `--port rfc2217://HOST:PORT` reaches a board
plugged into another computer.
"""

import hashlib
import json
import os
import socket
import subprocess
import zlib

import pytest
import serial
from typer.testing import CliRunner

from cli.main import app
from tests.boards.esp_board import EspBoard, Rfc2217Server
from tests.boards.esp_rom import FLASH_SIZE, EspRomPeer, app_image
from tests.boards.esp_stub import esptool_stub
from tests.hub_process import SENSING

runner = CliRunner()
ROM_ONLY = ("--no-reset", "--no-stub")
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32s3": 9, "esp32c3": 5, "esp32c6": 13}
CHIPS = pytest.mark.parametrize(
    ("rom", "chip", "offset"),
    [
        ({"chip": "esp32"}, "ESP32", 0x1000),
        ({"chip": "esp32s2"}, "ESP32-S2", 0x1000),
        ({"chip": "esp32s3"}, "ESP32-S3", 0x0),
        ({"chip": "esp32c3"}, "ESP32-C3", 0x0),
        ({"chip": "esp32c6"}, "ESP32-C6", 0x0),
    ],
    indirect=["rom"],
    ids=["esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6"],
)
STUB_WRITE = 0x4000  # the stub takes blocks of 16 kB
NOT_IN_LOADER = (
    "✗ The board at {port} does not answer like an ESP32 in its bootloader: serve its port with esp_rfc2217_server "
    "(it resets the board into its bootloader), or hold its BOOT button while pressing RESET, and try again.\n"
)


@pytest.fixture
def rom(request):
    with EspRomPeer(**getattr(request, "param", {})) as peer:
        yield peer


def sensing_flash(*options: str, env: dict | None = None):
    return runner.invoke(app, ["device", "flash", *options], env=env)


def flash(*options: str, env: dict | None = None):
    """With the chip's ROM loader only, the board in its bootloader already."""
    return sensing_flash(*ROM_ONLY, *options, env=env)


def image_file(tmp_path, chip: str, name: str = "firmware-v1.24.1.bin", size: int = 40_000):
    path = tmp_path / name
    path.write_bytes(app_image(CHIP_IDS[chip], size))
    return path


@CHIPS
def test_the_image_lands_at_the_chips_offset_and_is_verified(rom, tmp_path, chip, offset):
    firmware = image_file(tmp_path, rom.chip)
    data = firmware.read_bytes()
    rom.flash[0x200000:0x200010] = b"old filesystem.."  # what an earlier firmware left

    result = flash("--firmware", str(firmware), "--port", rom.port)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ MicroPython 1.24.1 written to the {chip} on {rom.port} (verified).\n"
    end = offset + len(data)
    assert rom.flash[offset:end] == data
    assert rom.flash[:offset] + rom.flash[end:] == b"\xff" * (FLASH_SIZE - len(data))  # all else erased
    assert rom.bauds == [(460800, 0)] and rom.resets == 0
    assert rom.commands.count("SPI_FLASH_MD5") == 2  # write_flash's own check, then verify_flash
    assert "MEM_BEGIN" not in rom.commands and rom.stub_commands == []
    assert "ERASE_FLASH" not in rom.commands  # a stub command: the ROM erases with FLASH_BEGIN
    assert rom.commands.count("FLASH_DATA") == -(-len(data) // 0x400)


@pytest.mark.parametrize("rom", [{"chip": "esp32s3", "max_baud": 115200}], indirect=True)
def test_a_line_that_cannot_carry_the_fast_rate_falls_back_to_115200(rom, tmp_path):
    firmware = image_file(tmp_path, "esp32s3")

    result = flash("--firmware", str(firmware), "--port", rom.port, "--baud", "921600")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "  The line did not carry 921600 baud, so it was written at 115200.\n"
        f"✓ MicroPython 1.24.1 written to the ESP32-S3 on {rom.port} (verified).\n"
    )
    assert rom.bauds == [(921600, 0)] and rom.resets == 1
    assert rom.flash[: len(firmware.read_bytes())] == firmware.read_bytes()


# ------------------------------------------------------------------------------------------- the stub (default)


@CHIPS
def test_the_stub_writes_the_image_compressed_and_checks_it(rom, tmp_path, chip, offset):
    firmware = image_file(tmp_path, rom.chip)
    data = firmware.read_bytes()
    rom.flash[0x200000:0x200010] = b"old filesystem.."

    result = sensing_flash("--no-reset", "--firmware", str(firmware), "--port", rom.port)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ MicroPython 1.24.1 written to the {chip} on {rom.port} (verified).\n"
    end = offset + len(data)
    assert rom.flash[offset:end] == data
    assert rom.flash[:offset] + rom.flash[end:] == b"\xff" * (FLASH_SIZE - len(data))  # all else erased
    stub = esptool_stub(rom.chip)
    assert rom.ram == {stub.text_start: stub.text, stub.data_start: stub.data}
    assert rom.commands[rom.commands.index("MEM_END") + 1 :] == rom.stub_commands  # all but the upload
    assert [name for name in rom.stub_commands if name not in ("READ_REG", "WRITE_REG", "SPI_SET_PARAMS")] == [
        "CHANGE_BAUDRATE", "ERASE_FLASH", "FLASH_DEFL_BEGIN",
        *["FLASH_DEFL_DATA"] * -(-len(zlib.compress(data, 9)) // STUB_WRITE),
        "FLASH_DEFL_END", "SPI_FLASH_MD5", "SPI_FLASH_MD5",
        "FLASH_BEGIN", "FLASH_END",  # --no-reset: leave the stub (esp-flasher-stub stays, it does not reboot)
    ]  # fmt: skip
    assert rom.bauds == [(460800, 115200)]  # the stub is told the rate it is leaving too


@pytest.mark.parametrize("rom", [{"chip": "esp32s3", "max_baud": 115200}], indirect=True)
def test_with_the_stub_too_a_line_that_cannot_carry_the_fast_rate_falls_back(rom, tmp_path):
    firmware = image_file(tmp_path, "esp32s3")

    result = sensing_flash("--no-reset", "--firmware", str(firmware), "--port", rom.port, "--baud", "921600")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "  The line did not carry 921600 baud, so it was written at 115200.\n"
        f"✓ MicroPython 1.24.1 written to the ESP32-S3 on {rom.port} (verified).\n"
    )
    assert rom.bauds == [(921600, 115200)] and rom.boots == ["download"]  # reset back into the ROM loader
    assert rom.commands.count("MEM_END") == 2  # the reset took the stub away: it was loaded again
    assert rom.flash[: len(firmware.read_bytes())] == firmware.read_bytes()


@pytest.mark.parametrize("rom", [{"chip": "esp32s3", "noise": "MEM_DATA"}], indirect=True)
def test_a_stub_damaged_on_the_way_is_refused_and_nothing_is_written(rom, tmp_path):
    result = sensing_flash("--no-reset", "--firmware", str(image_file(tmp_path, "esp32s3")), "--port", rom.port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The ESP32-S3 at {rom.port} did not start esptool's flasher stub: try again, or flash with --no-stub "
        "(slower: the chip's ROM loader only).\n"
    )
    assert rom.stub_commands == [] and rom.flash == b"\xff" * FLASH_SIZE


@pytest.mark.parametrize("rom", [{"chip": "esp32c6", "noise": "FLASH_DEFL_DATA"}], indirect=True)
def test_a_compressed_block_damaged_on_the_way_is_sent_again(rom, tmp_path):
    firmware = image_file(tmp_path, "esp32c6")
    data = firmware.read_bytes()

    result = sensing_flash("--no-reset", "--firmware", str(firmware), "--port", rom.port)

    assert (result.exit_code, result.stderr) == (0, "")
    assert rom.stub_commands.count("FLASH_DEFL_DATA") == -(-len(zlib.compress(data, 9)) // STUB_WRITE) + 1
    assert rom.flash[: len(data)] == data


@pytest.mark.parametrize("rom", [{"chip": "esp32"}], indirect=True)
def test_a_port_that_refuses_dtr_and_rts_gets_no_esptool_warning(rom, tmp_path):
    """The reset (the default) on a port without modem lines: esptool warns that the chip was not reset, once a
    process, through the logger it had when imported. Run as its own process, as at a terminal, the command
    says nothing of it: the board was in its loader, and is flashed; it is told to press the reset button."""
    firmware = image_file(tmp_path, "esp32")

    result = subprocess.run([SENSING, "device", "flash", "--firmware", str(firmware), "--port", rom.port],
                            capture_output=True, text=True, timeout=120)  # fmt: skip

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ MicroPython 1.24.1 written to the ESP32 on {rom.port} (verified).\n"
        "  Its port could not restart it: press its reset button (EN or RST) to start MicroPython.\n"
    )
    assert rom.flash[0x1000 : 0x1000 + len(firmware.read_bytes())] == firmware.read_bytes()


# ------------------------------------------------------------------------------------------- the reset, remotely


def test_the_defaults_reset_a_board_on_another_computer_into_its_bootloader(tmp_path):
    firmware = image_file(tmp_path, "esp32s3")
    data = firmware.read_bytes()
    with EspBoard(chip="esp32s3") as board, Rfc2217Server(board) as server:  # as esp_rfc2217_server serves it
        port = server.url  # rfc2217://127.0.0.1:N, without ?ign_set_control: the command adds it
        result = sensing_flash("--firmware", str(firmware), "--port", port)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ MicroPython 1.24.1 written to the ESP32-S3 on {port} (verified).\n"
    assert board.flash[: len(data)] == data and board.flash[len(data) :] == b"\xff" * (FLASH_SIZE - len(data))
    # Nobody held BOOT. The chip ran its firmware (the server's connection asserts DTR and RTS, one after the
    # other, which resets it); the server reset it into its loader when the client opened the port, and again
    # for esptool's reset sequence; esptool's hard reset at the end started the firmware.
    assert board.boots == ["firmware", "download", "download", "firmware"]
    assert {"ERASE_FLASH", "FLASH_DEFL_END"} <= set(board.stub_commands) and board.bauds == [(460800, 115200)]


def test_a_board_of_another_chip_is_reset_back_out_of_its_bootloader(tmp_path):
    firmware = image_file(tmp_path, "esp32c3")
    with EspBoard(chip="esp32s3") as board, Rfc2217Server(board) as server:
        port = server.url
        result = sensing_flash("--board", "ESP32_GENERIC_C3", "--firmware", str(firmware), "--port", port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The board at {port} is an ESP32-S3, not the ESP32-C3 of ESP32_GENERIC_C3: say which board it is with "
        "--board.\n"
    )
    # Reset into its loader to be asked its chip, refused, and reset out of it: it runs its firmware, untouched.
    assert (board.boots[-1], board.loader, board.flash) == ("firmware", None, b"\xff" * FLASH_SIZE)


def test_a_plain_rfc2217_relay_cannot_reset_an_esp32_into_its_bootloader(tmp_path):
    """esptool issue #383: relayed one change per round trip, the reset sequence lets EN rise with IO0 high."""
    with EspBoard(chip="esp32s3") as board, Rfc2217Server(board, espressif=False) as server:
        port = server.url
        result = sensing_flash("--firmware", str(image_file(tmp_path, "esp32s3")), "--port", port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == NOT_IN_LOADER.format(port=port)
    assert board.boots == ["firmware"] * 5  # the connection's, then each of the command's four attempts
    assert board.commands == []


def test_without_reset_a_board_running_its_firmware_does_not_answer(tmp_path):
    with EspBoard(chip="esp32s3") as board, Rfc2217Server(board, espressif=False) as server:
        port = server.url
        result = sensing_flash("--no-reset", "--firmware", str(image_file(tmp_path, "esp32s3")), "--port", port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == NOT_IN_LOADER.format(port=port)
    # Reset as the client came (the server asserts RTS before DTR) and as it left (it lets DTR go before RTS),
    # into its firmware both times; nothing asked for the bootloader.
    assert board.boots == ["firmware", "firmware"] and board.commands == []


def test_nothing_answers_at_a_remote_port(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = f"rfc2217://127.0.0.1:{closed.getsockname()[1]}"

    result = sensing_flash("--firmware", str(image_file(tmp_path, "esp32")), "--port", port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ Nothing answers at {port}: start esp_rfc2217_server on the computer the board is plugged into, "
        "and check the host name and port number.\n"
    )


def test_a_raw_network_port_is_refused(tmp_path):
    result = sensing_flash("--firmware", str(image_file(tmp_path, "esp32")), "--port", "socket://lab-pc:4000")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ socket://lab-pc:4000 is a raw network port, which can neither reset the board nor change the line "
        "rate: serve the board with esp_rfc2217_server and give its port as rfc2217://HOST:PORT.\n"
    )


# ------------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("rom", [{"chip": "esp32c3", "stuck_bit_at": 0x4321}], indirect=True)
@pytest.mark.parametrize("loader", [ROM_ONLY, ("--no-reset", "--stub")], ids=["rom", "stub"])
def test_flash_that_does_not_hold_what_was_written(rom, tmp_path, loader):
    firmware = image_file(tmp_path, "esp32c3", size=60_000)
    assert firmware.read_bytes()[0x4321] & 1 == 0  # the byte needs the stuck bit cleared

    result = sensing_flash(*loader, "--firmware", str(firmware), "--port", rom.port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The ESP32-C3 at {rom.port} does not hold what was written (the check after writing failed): "
        "try again with --baud 115200 or another USB cable.\n"
    )


@pytest.mark.parametrize("rom", [{"chip": "esp32"}], indirect=True)
def test_an_image_for_another_chip_is_refused_and_nothing_is_written(rom, tmp_path):
    firmware = image_file(tmp_path, "esp32s3", name="ESP32_GENERIC_S3-20241129-v1.24.1.bin")

    result = flash("--firmware", str(firmware), "--port", rom.port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ ESP32_GENERIC_S3-20241129-v1.24.1.bin is made for the ESP32-S3, but the board at {rom.port} "
        "is an ESP32: use the firmware made for your board.\n"
    )
    assert rom.flash == b"\xff" * FLASH_SIZE
    assert "FLASH_BEGIN" not in rom.commands


@pytest.mark.parametrize("rom", [{"chip": "esp32s3"}], indirect=True)
def test_the_board_named_must_be_the_board_plugged_in(rom, tmp_path):
    firmware = image_file(tmp_path, "esp32c3")

    result = flash("--board", "ESP32_GENERIC_C3", "--firmware", str(firmware), "--port", rom.port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The board at {rom.port} is an ESP32-S3, not the ESP32-C3 of ESP32_GENERIC_C3: "
        "say which board it is with --board.\n"
    )


def test_a_file_that_is_no_esp_image_is_refused(tmp_path):
    firmware = tmp_path / "ESP32_GENERIC-20241129-v1.24.1.bin"
    firmware.write_bytes(b"<html>Not Found</html>\n")

    result = flash("--board", "ESP32_GENERIC", "--firmware", str(firmware), "--port", "/dev/ttyUSB0")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ {firmware.name} is not an ESP32 firmware image: use the .bin file of MicroPython for your board.\n"
    )


def test_no_board_at_the_port(tmp_path):
    port = str(tmp_path / "ttyUSB7")
    result = flash("--firmware", str(image_file(tmp_path, "esp32")), "--port", port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"✗ There is no board at {port}: check that it is plugged in and that the port is right.\n"


def test_no_port_given(tmp_path):
    result = flash("--firmware", str(image_file(tmp_path, "esp32")), env={"SENSING_PORT": ""})

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "✗ Say which serial port the ESP32 is on with --port, e.g. /dev/ttyUSB0.\n"


def test_a_busy_port(rom, tmp_path):
    with serial.Serial(rom.port, 115200, exclusive=True):  # a serial monitor has it
        result = flash("--firmware", str(image_file(tmp_path, "esp32")), "--port", rom.port)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The port {rom.port} is busy: close the other program using it "
        "(a serial monitor, Thonny, another sensing command) and try again.\n"
    )
    assert rom.commands == []


def test_a_board_that_does_not_answer(tmp_path):
    master, slave = os.openpty()  # a port with nothing behind it: a board running its program, not the loader
    port = os.ttyname(slave)
    try:
        result = flash("--firmware", str(image_file(tmp_path, "esp32")), "--port", port)
    finally:
        os.close(master)
        os.close(slave)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The board at {port} does not answer like an ESP32 in its bootloader: hold its BOOT button, "
        "press and release RESET, let go of BOOT, and try again.\n"
    )


@pytest.mark.parametrize("rom", [{"chip": "esp32s3"}], indirect=True)
def test_the_cached_image_of_a_board(rom, tmp_path):
    data = app_image(9)
    name = "ESP32_GENERIC_S3-20241129-v1.24.1.bin"
    (tmp_path / "cache" / "firmware").mkdir(parents=True)
    (tmp_path / "cache" / "firmware" / name).write_bytes(data)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"boards": {"ESP32_GENERIC_S3": {"chip": "ESP32-S3", "versions": {
        "1.24.1": {"file": name, "url": f"http://127.0.0.1:9/{name}", "sha256": hashlib.sha256(data).hexdigest()},
    }}}}))  # fmt: skip

    result = flash("--board", "ESP32_GENERIC_S3", "--manifest", str(manifest), "--port", rom.port,
                   env={"SENSING_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"✓ MicroPython 1.24.1 written to the ESP32-S3 on {rom.port} (verified).\n"
    assert rom.flash[: len(data)] == data


def test_a_board_missing_from_the_cache(tmp_path):
    data = app_image(9)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"boards": {"ESP32_GENERIC_S3": {"chip": "ESP32-S3", "versions": {
        "1.24.1": {"file": "s3.bin", "url": "http://127.0.0.1:9/s3.bin", "sha256": hashlib.sha256(data).hexdigest()},
    }}}}))  # fmt: skip

    result = flash("--board", "ESP32_GENERIC_S3", "--manifest", str(manifest), "--port", "/dev/ttyUSB0",
                   env={"SENSING_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ MicroPython 1.24.1 for ESP32_GENERIC_S3 is not in the cache ({tmp_path / 'cache' / 'firmware'}): "
        "run `sensing device fetch-firmware --board ESP32_GENERIC_S3` while online, or give a file with --firmware.\n"
    )
