"""The board pin maps (firmware/boards/*.json): complete, and wired to pins each chip can use for that job."""

import json

import pytest

from firmware.sensors import registry
from tests.firmware.support import REPO

BOARDS = sorted((REPO / "firmware" / "boards").glob("*.json"))
EXPECTED = ["ESP32_GENERIC", "ESP32_GENERIC_C3", "ESP32_GENERIC_S3", "RPI_PICO2_W", "RPI_PICO_W"]

# RP2040/RP2350 GPIO function select: which pins carry each peripheral signal.
RP2 = {
    ("i2c", 0, "sda"): {0, 4, 8, 12, 16, 20, 24, 28}, ("i2c", 0, "scl"): {1, 5, 9, 13, 17, 21, 25, 29},
    ("i2c", 1, "sda"): {2, 6, 10, 14, 18, 22, 26}, ("i2c", 1, "scl"): {3, 7, 11, 15, 19, 23, 27},
    ("uart", 0, "tx"): {0, 12, 16, 28}, ("uart", 0, "rx"): {1, 13, 17, 29},
    ("uart", 1, "tx"): {4, 8, 20, 24}, ("uart", 1, "rx"): {5, 9, 21, 25},
}
RP2_WIRELESS = {23, 24, 25, 29}  # the Pico W's and Pico 2 W's CYW43 interface
# Pins an ESP32 map must not use: the SPI flash's, and for the S3 also USB and octal PSRAM; the C3's flash and USB.
ESP32_RESERVED = {
    "ESP32_GENERIC": set(range(6, 12)),
    "ESP32_GENERIC_S3": set(range(19, 21)) | set(range(26, 38)),
    "ESP32_GENERIC_C3": set(range(12, 20)),
}
ESP32_INPUT_ONLY = set(range(34, 40))


def load(path):
    return json.loads(path.read_text())


def pins(board):
    """(role, pin) for every pin the map uses."""
    out = [("i2c sda", board["i2c"]["sda"]), ("i2c scl", board["i2c"]["scl"]), ("onewire", board["onewire"]["pin"]),
           ("led", board["led"]["pin"])]
    for port, spec in board["uart"].items():
        if spec is not None:
            out += [(f"uart {port} tx", spec["tx"]), (f"uart {port} rx", spec["rx"])]
    return out


def test_every_board_has_a_map():
    assert [p.stem for p in BOARDS] == EXPECTED


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
def test_map_is_complete_and_names_its_board(path):
    board = load(path)
    assert board["board"] == path.stem
    assert board["port"] in ("esp32", "rp2")
    assert set(board) == {"board", "port", "description", "i2c", "uart", "onewire", "led"}
    assert set(board["i2c"]) == {"id", "sda", "scl", "freq"}
    assert set(board["uart"]) == {"sensor", "modem"}
    assert board["led"]["kind"] in ("gpio", "neopixel")


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
def test_no_pin_is_used_twice(path):
    used = [pin for _, pin in pins(load(path))]
    assert len(used) == len(set(used)), pins(load(path))


@pytest.mark.parametrize("path", [p for p in BOARDS if p.stem.startswith("RPI")], ids=lambda p: p.stem)
def test_rp2_pins_carry_their_signal(path):
    board = load(path)
    i2c = board["i2c"]
    assert i2c["sda"] in RP2[("i2c", i2c["id"], "sda")] and i2c["scl"] in RP2[("i2c", i2c["id"], "scl")]
    for spec in board["uart"].values():
        assert spec["tx"] in RP2[("uart", spec["id"], "tx")] and spec["rx"] in RP2[("uart", spec["id"], "rx")]
    assert {pin for _, pin in pins(board)} & RP2_WIRELESS == set()
    assert board["led"]["pin"] == "LED"


@pytest.mark.parametrize("path", [p for p in BOARDS if p.stem.startswith("ESP32")], ids=lambda p: p.stem)
def test_esp32_pins_are_free_and_can_drive(path):
    board = load(path)
    used = pins(board)
    assert {pin for _, pin in used} & ESP32_RESERVED[board["board"]] == set()
    for role, pin in used:
        if not role.endswith(" rx"):  # SDA, SCL, TX, 1-Wire and the LED all drive their pin
            assert pin not in ESP32_INPUT_ONLY, role
    ids = [spec["id"] for spec in board["uart"].values() if spec is not None]
    assert 0 not in ids and len(ids) == len(set(ids))  # UART0 is the console


class Recorder:
    def __init__(self):
        self.made = []

    def Pin(self, pin):
        return pin

    def I2C(self, *args, **kwargs):
        self.made.append(("I2C", args, kwargs))
        return "i2c"

    def UART(self, *args, **kwargs):
        self.made.append(("UART", args, kwargs))
        return "uart"

    def OneWire(self, pin):
        self.made.append(("OneWire", pin))
        return "onewire"


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
def test_open_buses_uses_the_map(path):
    board = load(path)
    machine = Recorder()
    faults = []
    buses = registry.open_buses(board, machine, machine, uart=True, faults=faults)
    assert buses == {"i2c": "i2c", "uart": "uart", "onewire": "onewire"} and faults == []
    sensor = board["uart"]["sensor"]
    assert machine.made == [
        ("I2C", (board["i2c"]["id"],), {"sda": board["i2c"]["sda"], "scl": board["i2c"]["scl"], "freq": 100000}),
        ("UART", (sensor["id"],), {"baudrate": 9600, "bits": 8, "parity": None, "stop": 1,
                                   "tx": sensor["tx"], "rx": sensor["rx"]}),
        ("OneWire", board["onewire"]["pin"]),
    ]
