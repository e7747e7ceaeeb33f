"""`sensing device provision` against real components: a hub process with its embedded broker, and a simulated
board (the MicroPython unix port behind mpremote) running the real firmware, deployed by the deploy command."""

import json
from pathlib import Path

import httpx
import pytest
import serial
from typer.testing import CliRunner

from cli.device_deploy import BUNDLE, FIRMWARE, deploy
from cli.main import app
from firmware.config import make_config

runner = CliRunner()

ANSWERS = """\
sharing: open
purposes: [community_awareness, research]
area: easton
placement: outdoor
collected_by: Easton workshop team
sensors: emulated
"""
# The emulated sensor's first reading with seed 1 (firmware/sensors/emulated.py): 19.0 °C and 54.5 % RH.
FIRST_READING = "✓ first reading: 19.0 °C, 55 % RH\n"




@pytest.fixture
def board(simulated_board):
    """The simulated board with the toolkit's firmware on it, deployed as `sensing device deploy` does."""
    deploy(port=simulated_board.port, firmware_folder=FIRMWARE, bundle=BUNDLE, source=False)  # compiled, as by default
    return simulated_board


@pytest.fixture
def answers(tmp_path) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text(ANSWERS)
    return path


def provision(port: str, hub: str, key: str, *options: str, input: str | None = None):
    return runner.invoke(app, ["device", "provision", "--port", port, "--hub", hub, "--key", key, *options],
                         input=input)  # fmt: skip


def owner_token(stdout: str) -> str:
    return next(line.split()[2] for line in stdout.splitlines() if line.startswith("  Owner token"))


def test_provision_registers_configures_and_sees_the_first_reading(board, hub, facilitator_key, answers):
    result = provision(board.port, hub.url, facilitator_key, "--answers", str(answers))

    assert (result.exit_code, result.stderr) == (0, "")
    config = json.loads((board.root / "config.json").read_text())
    device, token = config["device_id"], owner_token(result.stdout)
    assert result.stdout == (
        f"✓ Registered {device}: sharing open, in easton.\n"
        f"  Owner token    {token}  (the resident's key to their readings: shown only now)\n"
        f"✓ Wrote /config.json to the board at {board.port}: no WiFi, broker 127.0.0.1:{hub.mqtt_port}, "
        "a reading every 60 s.\n"
        "✓ Restarted the board.\n" + FIRST_READING
    )
    assert config == {
        "device_id": device, "secret": config["secret"], "broker_host": "127.0.0.1",
        "broker_port": hub.mqtt_port, "interval": 60, "board": "RPI_PICO_W", "sensors": "emulated",
    }  # fmt: skip
    assert not (board.root / "config.json.new").exists()
    mine = httpx.get(f"{hub.url}/api/v1/devices/{device}/agreements", headers={"Authorization": f"Bearer {token}"})
    assert [(a["sharing"], a["purposes"], a["collected_by"]) for a in mine.json()] == [
        ("open", ["community_awareness", "research"], "Easton workshop team")
    ]


def test_a_board_provisioned_again_keeps_its_device(board, hub, facilitator_key, answers):
    first = provision(board.port, hub.url, facilitator_key, "--answers", str(answers))
    config = json.loads((board.root / "config.json").read_text())

    again = provision(board.port, hub.url, facilitator_key, "--reuse", "--interval", "300")

    assert (first.exit_code, again.exit_code, again.stderr) == (0, 0, "")
    assert again.stdout == (
        f"✓ Keeping {config['device_id']}, already registered with this hub.\n"
        f"✓ Wrote /config.json to the board at {board.port}: no WiFi, broker 127.0.0.1:{hub.mqtt_port}, "
        "a reading every 300 s.\n"
        "✓ Restarted the board.\n" + FIRST_READING  # from open data: the resident chose open
    )
    assert json.loads((board.root / "config.json").read_text()) == dict(config, interval=300)
    devices = httpx.get(f"{hub.url}/api/v1/devices").json()
    assert [d["public_id"] for d in devices] == [config["device_id"]]


def test_questions_in_plain_words(board, hub, facilitator_key):
    typed = "2\n1,3\nSt Werburghs\n1\n1\n\nEaston workshop team\n"

    result = provision(board.port, hub.url, facilitator_key, input=typed)

    assert (result.exit_code, result.stderr) == (0, "")
    device = json.loads((board.root / "config.json").read_text())["device_id"]
    token = owner_token(result.stdout)
    assert result.stdout == (
        "Who may see the readings?\n"
        "  1. Only me\n"
        "  2. My community group, as averages for my area\n"
        "  3. Anyone, as open data\n"
        "Choose a number [2]: 2\n"
        "What may the readings be used for?\n"
        "  1. showing the community what its air and homes are like\n"
        "  2. research by universities and community researchers\n"
        "  3. evidence for the council's policies and services\n"
        "  4. teaching in schools and workshops\n"
        "  5. advice to the resident about their own home (damp, ventilation)\n"
        "Choose one or more numbers, e.g. 1,2 [1]: 1,3\n"
        "Which area is the sensor in (a neighbourhood or ward)?: St Werburghs\n"
        "Is the sensor indoors or outdoors?\n"
        "  1. Indoors\n"
        "  2. Outdoors\n"
        "Choose a number [2]: 1\n"
        "Where may the published readings say the sensor is?\n"
        "  1. Only the name of the area\n"
        "  2. A map cell of a few city blocks (the exact place stays private)\n"
        "  3. No location at all\n"
        "Choose a number [1]: 1\n"
        "WiFi network name (leave empty if the board needs no WiFi) []: \n"
        "Who is taking this consent (your name or group)?: Easton workshop team\n"
        f"✓ Registered {device}: sharing community, in St Werburghs.\n"
        f"  Owner token    {token}  (the resident's key to their readings: shown only now)\n"
        f"✓ Wrote /config.json to the board at {board.port}: no WiFi, broker 127.0.0.1:{hub.mqtt_port}, "
        "a reading every 60 s.\n"
        "✓ Restarted the board.\n" + FIRST_READING
    )
    public = httpx.get(f"{hub.url}/api/v1/devices/{device}").json()
    assert (public["area"], public["placement"], public["sharing"]) == ("St Werburghs", "indoor", "community")


# A WiFi radio for the simulated board, which has none: the hardware edge, faked. A wrong password never
# connects, as a real radio reports (rp2's network module: STAT_WRONG_PASSWORD is -3).
NETWORK = """\
STA_IF = 0
STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP, STAT_WRONG_PASSWORD = 0, 1, 3, -3


class WLAN:
    def __init__(self, interface):
        self._status = STAT_IDLE

    def active(self, *on):
        return True

    def connect(self, ssid, password):
        self._status = STAT_WRONG_PASSWORD

    def isconnected(self):
        return False

    def status(self, *param):
        return self._status
"""


def test_wrong_wifi_credentials_are_told_from_what_the_board_says(board, hub, facilitator_key, answers):
    (board.root / "lib").mkdir(exist_ok=True)
    (board.root / "lib" / "network.py").write_text(NETWORK)
    answers.write_text(ANSWERS + "wifi_ssid: Home network\nwifi_password: not-the-password\n")

    result = provision(board.port, hub.url, facilitator_key, "--answers", str(answers))

    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "✓ Restarted the board."
    assert result.stderr == (
        "✗ The board could not join the WiFi network 'Home network': check the network's name and password "
        "(both are case-sensitive), then provision again.\n"
    )


def test_the_hub_not_running(board, tmp_path, answers):
    result = provision(board.port, "http://127.0.0.1:9", "fac_anything", "--answers", str(answers))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ The hub at http://127.0.0.1:9 is not reachable: is it running (make run), and is the address right?\n"
    )
    assert not (board.root / "config.json").exists()


def test_a_key_the_hub_does_not_know(board, hub, answers):
    result = provision(board.port, hub.url, "fac_not-a-real-key", "--answers", str(answers))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ The hub did not accept the key: check it was copied whole, or ask the hub operator for a new one.\n"
    )
    assert httpx.get(f"{hub.url}/api/v1/devices").json() == []


def test_an_owner_token_cannot_register(board, hub, facilitator_key, answers):
    provision(board.port, hub.url, facilitator_key, "--answers", str(answers))
    first = json.loads((board.root / "config.json").read_text())
    token = httpx.post(f"{hub.url}/api/v1/devices", headers={"Authorization": f"Bearer {hub.operator_key}"}, json={
        "device": {"kind": "air", "board": "RPI_PICO_W", "transport": "mqtt", "placement": "outdoor", "area": "x"},
        "agreement": {"consent_version": "2026-11", "sharing": "private", "purposes": ["research"],
                      "collection_method": "workshop", "collected_by": "test"},
    }).json()["owner_token"]  # fmt: skip

    result = provision(board.port, hub.url, token, "--answers", str(answers), "--new")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "✗ That key cannot register devices: use a facilitator key from the hub's operator.\n"
    assert json.loads((board.root / "config.json").read_text()) == first


def test_an_answers_file_with_a_mistake_registers_nothing(board, hub, facilitator_key, answers):
    answers.write_text(ANSWERS.replace("sharing: open", "sharing: public"))

    result = provision(board.port, hub.url, facilitator_key, "--answers", str(answers))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "✗ The sharing 'public' is not one of private, community, open.\n"
    assert httpx.get(f"{hub.url}/api/v1/devices").json() == []


def test_no_board_at_that_port(hub, facilitator_key, answers):
    result = provision("/dev/ttyACM-sensing-none", hub.url, facilitator_key, "--answers", str(answers))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ There is no board at /dev/ttyACM-sensing-none: check that it is plugged in and that the port is right.\n"
    )


def test_a_port_another_program_has_open(board, hub, facilitator_key, answers):
    with serial.Serial(board.port, 115200, exclusive=True):
        result = provision(board.port, hub.url, facilitator_key, "--answers", str(answers))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The port {board.port} is busy: close the other program using it "
        "(a serial monitor, Thonny, another sensing command) and try again.\n"
    )
    assert httpx.get(f"{hub.url}/api/v1/devices").json() == []


def test_a_board_without_the_firmware(simulated_board, hub, facilitator_key, answers):
    port = simulated_board.port

    result = provision(port, hub.url, facilitator_key, "--answers", str(answers))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The board at {port} has no sensing firmware yet: run sensing device deploy --port {port} first.\n"
    )


@pytest.mark.mosquitto
def test_a_hub_whose_broker_speaks_tls_gets_its_ca_certificate_on_the_board(board, tls_hub, answers):
    hub, broker = tls_hub.hub, tls_hub.broker

    result = provision(board.port, hub.url, tls_hub.facilitator_key, "--answers", str(answers),
                       "--broker-ca", str(tls_hub.certificates.ca))  # fmt: skip

    assert (result.exit_code, result.stderr) == (0, "")
    config = json.loads((board.root / "config.json").read_text())
    assert result.stdout.splitlines()[2:] == [
        f"✓ Wrote /config.json to the board at {board.port}: no WiFi, broker 127.0.0.1:{broker.tls_port} over TLS "
        "(its CA certificate in /broker-ca.der), a reading every 60 s.",
        "✓ Restarted the board.",
        FIRST_READING.strip(),
    ]
    # The CA certificate as DER (smaller than the PEM given), and the config the firmware's own check takes.
    assert (board.root / "broker-ca.der").read_bytes() == tls_hub.certificates.ca_der().read_bytes()
    assert (config["broker_port"], config["broker_tls"], config["broker_ca"]) == (broker.tls_port, True,
                                                                                 "/broker-ca.der")  # fmt: skip
    checked = make_config(config)
    assert (checked["broker_tls"], checked["broker_ca"]) == (True, "/broker-ca.der")
    assert broker.ports_of(config["device_id"]) == [broker.tls_port]  # the reading went over TLS


@pytest.mark.mosquitto
@pytest.mark.parametrize(
    ("given", "sentence"),
    [
        (None, "The hub's broker (127.0.0.1:{port}) speaks TLS: give the CA certificate that signed its certificate "
               "with --broker-ca (the hub's operator has it: ca.pem)."),
        ("nowhere.pem", "The CA certificate {path} cannot be read (No such file or directory): give the file the "
                        "hub's operator gave you (ca.pem)."),
        ("broker.key", "{path} is not a certificate (PEM or DER): give the CA certificate the hub's operator gave "
                       "you (ca.pem, never ca.key)."),
    ],
    ids=["not-given", "missing", "a-key"],
)  # fmt: skip
def test_without_a_usable_ca_certificate_nothing_is_registered(tls_hub, tmp_path, answers, given, sentence):
    path = tls_hub.certificates.key if given == "broker.key" else tmp_path / given if given else None
    options = ["--broker-ca", str(path)] if path else []
    registered = httpx.get(f"{tls_hub.hub.url}/api/v1/devices").json()  # the hub is the module's: others' devices

    result = provision("/dev/ttyACM-sensing-none", tls_hub.hub.url, tls_hub.facilitator_key, "--answers",
                       str(answers), *options)  # fmt: skip

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "✗ " + sentence.format(port=tls_hub.broker.tls_port, path=path) + "\n"
    assert httpx.get(f"{tls_hub.hub.url}/api/v1/devices").json() == registered
