"""`sensing device monitor` against a simulated board running the real firmware, or a program of the test's."""

import json

import pytest
import serial
from typer.testing import CliRunner

from cli.device_deploy import BUNDLE, FIRMWARE, deploy
from cli.main import app
from cli.monitor import reading_text, shown
from tests.services import free_port

runner = CliRunner()


def monitor(port: str, *options: str):
    return runner.invoke(app, ["device", "monitor", "--port", port, *options])


@pytest.fixture
def board(simulated_board):
    deploy(port=simulated_board.port, firmware_folder=FIRMWARE, bundle=BUNDLE, source=False)  # compiled, as by default
    return simulated_board


def test_the_firmware_from_its_start_with_nothing_to_send_to(board):
    nowhere = free_port()  # no broker listens here: the firmware says so in its log lines
    (board.root / "config.json").write_text(json.dumps({
        "device_id": "air-monitor1", "secret": "dev_monitor", "broker_port": nowhere, "interval": 2, "cycles": 2,
        "backoff_jitter": 0, "ntp_host": "", "sensors": "emulated", "board": "RPI_PICO_W",
    }))  # fmt: skip

    result = monitor(board.port, "--restart", "--seconds", "12")

    assert (result.exit_code, result.stderr) == (0, "")
    refused = f"cannot reach the broker at 127.0.0.1:{nowhere}: [Errno 111] ECONNREFUSED"
    assert result.stdout.splitlines()[:4] == [
        "MPY: soft reboot",
        f"sensing: cannot send to 127.0.0.1:{nowhere} ({refused}); 1 reading(s) kept, retrying in 1 s",
        f"sensing: cannot send to 127.0.0.1:{nowhere} ({refused}); 2 reading(s) kept, retrying in 2 s",
        "sensing: 2 reading(s) still queued, sent at the next start",
    ]
    assert result.stdout.splitlines()[5:] == ['Type "help()" for more information.']  # main.py ended: the REPL


def test_reading_lines_are_shown_in_plain_words_and_the_rest_as_they_are(simulated_board):
    (simulated_board.root / "main.py").write_text(
        "import time\n"
        "print('sensing: starting')\n"
        "print('{\"seq\": 7, \"t\": 1795860238, \"v\": {\"humidity\": 63.5, \"temperature\": 21.4}}')\n"
        "while True:\n"
        "    time.sleep(0.1)\n"
    )

    result = monitor(simulated_board.port, "--restart", "--seconds", "2")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "MPY: soft reboot\nsensing: starting\nreading 7: 21.4 °C, 64 % RH\n"


def test_values_with_the_registrys_units_and_precision():
    assert reading_text({"humidity": 54.5, "temperature": 19.0}) == "19.0 °C, 55 % RH"
    assert reading_text({"pm2_5": 12.25, "co2": 612, "battery_voltage": 3.705, "pressure": 1008.4}) == (
        "12.3 µg/m³, 612 ppm, 1008.4 hPa, 3.71 V"
    )
    assert shown('{"seq": 1, "v": {"pm10": 35.1}}') == "reading 1: 35.1 µg/m³"
    assert shown("{not json") == "{not json"


def test_no_board_at_that_port():
    result = monitor("/dev/ttyACM-sensing-none", "--seconds", "1")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ There is no board at /dev/ttyACM-sensing-none: check that it is plugged in and that the port is right.\n"
    )


def test_a_port_another_program_has_open(simulated_board):
    with serial.Serial(simulated_board.port, 115200, exclusive=True):
        result = monitor(simulated_board.port, "--seconds", "1")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The port {simulated_board.port} is busy: close the other program using it "
        "(a serial monitor, Thonny, another sensing command) and try again.\n"
    )
