"""The scripted ESP ROM loader answers esptool's command line (esptool.main with argv) as a chip would."""

import contextlib
import io

import esptool
import pytest

from tests.boards.esp_rom import EspRomPeer, app_image

ROM_ONLY = ["--before", "no-reset", "--after", "no-reset", "--no-stub"]


def run_esptool(port: str, *argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        esptool.main(["--port", port, *ROM_ONLY, *argv])
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
    assert rom.bauds == [230400]
