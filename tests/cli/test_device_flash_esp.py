"""`sensing device flash` for ESP32-family boards: the real esptool (its Python API, --no-stub) talking the
ROM loader's serial protocol to a scripted peer on a pty (tests/boards/esp_rom.py), which keeps the flash.

On a pty DTR/RTS do not work, so these run with --no-reset: the board is taken to be in its bootloader
already, as with BOOT held at power-up. Real boards are reset into it by DTR/RTS (the default, --reset).
"""

import hashlib
import json
import os

import pytest
import serial
from typer.testing import CliRunner

from cli.main import app
from tests.boards.esp_rom import FLASH_SIZE, EspRomPeer, app_image

runner = CliRunner()
ROM_ONLY = ("--no-reset", "--no-stub")
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32s3": 9, "esp32c3": 5, "esp32c6": 13}


@pytest.fixture
def rom(request):
    with EspRomPeer(**getattr(request, "param", {})) as peer:
        yield peer


def flash(*options: str, env: dict | None = None):
    return runner.invoke(app, ["device", "flash", *ROM_ONLY, *options], env=env)


def image_file(tmp_path, chip: str, name: str = "firmware-v1.24.1.bin", size: int = 40_000):
    path = tmp_path / name
    path.write_bytes(app_image(CHIP_IDS[chip], size))
    return path


@pytest.mark.parametrize(
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
    assert rom.bauds == [460800] and rom.resets == 0
    assert rom.commands.count("SPI_FLASH_MD5") == 2  # write_flash's own check, then verify_flash
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
    assert rom.bauds == [921600] and rom.resets == 1
    assert rom.flash[: len(firmware.read_bytes())] == firmware.read_bytes()


@pytest.mark.parametrize("rom", [{"chip": "esp32c3", "stuck_bit_at": 0x4321}], indirect=True)
def test_flash_that_does_not_hold_what_was_written(rom, tmp_path):
    firmware = image_file(tmp_path, "esp32c3", size=60_000)
    assert firmware.read_bytes()[0x4321] & 1 == 0  # the byte needs the stuck bit cleared

    result = flash("--firmware", str(firmware), "--port", rom.port)

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
