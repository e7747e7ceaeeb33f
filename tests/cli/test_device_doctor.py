"""`sensing device doctor` against a real hub process and a simulated board running the real firmware."""

import json
import subprocess

import httpx
import pytest
from typer.testing import CliRunner

from cli.device_deploy import BUNDLE, FIRMWARE, deploy
from cli.main import app
from tests.cli.test_device_provision import ANSWERS, answers  # noqa: F401
from tests.services import free_port, wait_until

runner = CliRunner()


@pytest.fixture
def board(simulated_board):
    deploy(port=simulated_board.port, firmware_folder=FIRMWARE, bundle=BUNDLE, source=False)  # compiled, as by default
    return simulated_board


@pytest.fixture
def version(micropython) -> str:
    """The MicroPython version the simulated board runs: the unix port's."""
    code = "import sys; print('.'.join(str(n) for n in sys.implementation.version[:3]))"
    return subprocess.run([micropython, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def doctor(port: str, hub_url: str, *options: str):
    return runner.invoke(app, ["device", "doctor", "--port", port, "--hub", hub_url, *options])


def provisioned(board, hub, key, answers) -> str:  # noqa: F811
    result = runner.invoke(app, ["device", "provision", "--port", board.port, "--hub", hub.url, "--key", key,
                                 "--answers", str(answers)])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return json.loads((board.root / "config.json").read_text())["device_id"]


def test_a_provisioned_board_passes_every_check(board, hub, facilitator_key, answers, version):  # noqa: F811
    device = provisioned(board, hub, facilitator_key, answers)

    result = doctor(board.port, hub.url)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"✓ Board reachable at {board.port}: Raspberry Pi Pico W with RP2040\n"
        f"✓ MicroPython {version}\n"
        "✓ Firmware on the board\n"
        "✓ Hub reachable: Community sensing hub\n"
        f"✓ Config valid: device {device}, board RPI_PICO_W\n"
        "– WiFi: this board has no WiFi radio (a simulator, or a board on its host's network)\n"
        f"✓ Broker 127.0.0.1:{hub.mqtt_port} reachable from the board\n"
        "✓ Sensors: emulated, as the config says\n"
        f"✓ Device {device} registered with the hub, consent in force, sharing open\n"
        "✓ First reading at the hub: 19.0 °C, 55 % RH\n"
    )


def test_private_readings_are_not_looked_at_without_the_residents_token(board, hub, facilitator_key, answers):  # noqa: F811
    answers.write_text(ANSWERS.replace("sharing: open", "sharing: private"))
    device = provisioned(board, hub, facilitator_key, answers)

    result = doctor(board.port, hub.url, "--key", facilitator_key)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-2:] == [
        f"✓ Device {device} registered with the hub, consent in force, sharing private",
        "– First reading at the hub: not checked: the hub shows a device's readings only to its resident and the "
        "operator (give --owner-token, or an operator --key)",
    ]
    with_operator = doctor(board.port, hub.url, "--key", hub.operator_key)
    assert with_operator.stdout.splitlines()[-1] == "✓ First reading at the hub: 19.0 °C, 55 % RH"


def test_a_board_that_cannot_reach_the_broker_or_the_hub(board):
    nowhere, no_hub = free_port(), free_port()
    (board.root / "config.json").write_text(json.dumps({
        "device_id": "air-doctor1", "secret": "dev_doctor", "broker_port": nowhere, "board": "RPI_PICO_W",
        "sensors": "emulated",
    }))  # fmt: skip

    result = doctor(board.port, f"http://127.0.0.1:{no_hub}")

    assert (result.exit_code, result.stderr) == (1, "")
    assert result.stdout.splitlines()[3:] == [
        f"✗ The hub at http://127.0.0.1:{no_hub} is not reachable",
        "  fix: start it (make run), or check the address given with --hub",
        "✓ Config valid: device air-doctor1, board RPI_PICO_W",
        "– WiFi: this board has no WiFi radio (a simulator, or a board on its host's network)",
        f"✗ The board cannot reach the broker at 127.0.0.1:{nowhere} ([Errno 111] ECONNREFUSED)",
        "  fix: start the hub, and let its broker listen on the network (SENSING_EMBEDDED_BROKER_HOST=0.0.0.0; "
        "see docs/operators.md)",
        "✓ Sensors: emulated, as the config says",
    ]


def test_a_board_never_provisioned(board, hub):  # noqa: F811
    result = doctor(board.port, hub.url)

    assert (result.exit_code, result.stderr) == (1, "")
    assert result.stdout.splitlines()[3:] == [
        "✓ Hub reachable: Community sensing hub",
        "✗ The board has no /config.json: it has not been provisioned",
        f"  fix: sensing device provision --port {board.port} --hub {hub.url}",
    ]


def test_an_invalid_config_is_told_in_the_firmwares_words(board, hub):  # noqa: F811
    (board.root / "config.json").write_text(json.dumps({"secret": "dev_doctor"}))

    result = doctor(board.port, hub.url)

    assert result.exit_code == 1
    assert result.stdout.splitlines()[4:] == [
        "✗ The board's /config.json would be refused: the config has no 'device_id'",
        f"  fix: sensing device provision --port {board.port} --hub {hub.url}",
    ]


def test_no_board_at_that_port(hub):  # noqa: F811
    result = doctor("/dev/ttyACM-sensing-none", hub.url)

    assert (result.exit_code, result.stderr) == (1, "")
    assert result.stdout == (
        "✗ There is no board at /dev/ttyACM-sensing-none: check that it is plugged in and that the port is right.\n"
    )


def test_the_firmware_runs_again_after_the_checks(board, hub, facilitator_key, answers):  # noqa: F811
    device = provisioned(board, hub, facilitator_key, answers)

    def open_readings() -> int:
        return len(httpx.get(f"{hub.url}/api/v1/open/readings", params={"device": device}).json()["readings"])

    before = open_readings()
    doctor(board.port, hub.url)

    # Restarted, the firmware takes a reading at once (the next would be a minute later): two values more.
    wait_until(lambda: open_readings() == before + 2, "a reading from the restarted firmware")
