"""The codec against the golden vectors, under CPython and under the real MicroPython unix port."""

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware import codec, quantities
from tests.firmware.support import REPO
from tests.services import micropython_path

VECTORS = REPO / "tests" / "golden" / "codec_vectors.json"
RUNNER = Path(__file__).with_name("vector_runner.py")
SAMPLES = Path("/work/shared/samples")
CASES = json.loads(VECTORS.read_text())
FULL_AIR = {"pm1": 12.3, "pm2_5": 20.5, "pm10": 35.1, "co2": 612, "temperature": 21.7, "humidity": 63.5,
            "pressure": 1008.4, "battery_voltage": 3.71}


def run_vectors(interpreter, path, mode):
    out = subprocess.run([interpreter, str(RUNNER), str(VECTORS), str(path), mode],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def flat_dir(tmp_path_factory):
    # The files as they sit on a board: codec.py, encode.py, lora_status.py and quantities.py side by side.
    d = tmp_path_factory.mktemp("board")
    for name in ("codec.py", "encode.py", "lora_status.py", "quantities.py"):
        shutil.copy(REPO / "firmware" / name, d / name)
    return d


@pytest.fixture(scope="module")
def results(flat_dir):
    out = {"cpython": run_vectors(sys.executable, REPO, "package")}
    mp = micropython_path()
    if mp:
        out["micropython"] = run_vectors(mp, REPO, "package")
        out["micropython-flat"] = run_vectors(mp, flat_dir, "flat")
    return out


@pytest.mark.micropython
@pytest.mark.parametrize("interpreter", ["cpython", "micropython", "micropython-flat"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_vector(request, results, interpreter, case):
    if interpreter != "cpython":
        request.getfixturevalue("micropython")  # skips, or fails under CI=true, when it is missing
    assert results[interpreter][case["name"]] == case["expect"]


def test_vectors_have_unique_names():
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))


def test_every_width_holds_its_range():
    for name, q in quantities.QUANTITIES.items():
        span = round(q["max"] * q["scale"]) - round(q["min"] * q["scale"])
        assert span < 2 ** q["bits"], name
        assert span >= 2 ** (q["bits"] - 1), f"{name} wastes a bit"


def test_full_air_reading_bits_by_hand():
    # The packing written out as a string of bits, independently of the codec's accumulator.
    fields = [("pm1", 123, 14), ("pm2_5", 205, 14), ("pm10", 351, 15), ("co2", 612, 16),
              ("temperature", 217 + 400, 11), ("humidity", 127, 8), ("pressure", 10084 - 3000, 13),
              ("battery_voltage", 371, 10)]
    bits = "".join(format(n, f"0{w}b") for _, n, w in fields)
    bits += "0" * (-len(bits) % 8)
    body = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    bitmap = sum(1 << (quantities.QUANTITIES[name]["id"] - 1) for name, _, _ in fields)
    assert codec.encode_compact(17, FULL_AIR) == bytes([1, 0, 17]) + bitmap.to_bytes(2, "big") + body


def cayenne_size(values):
    # CayenneLPP: channel + type byte per value, then the data: temperature 2 B (0.1 °C), humidity 1 B
    # (0.5 %), barometer 2 B (0.1 hPa); everything else needs at least an analog input, 2 B (0.01).
    data = {"temperature": 2, "humidity": 1, "pressure": 2}
    return sum(2 + data.get(name, 2) for name in values)


def test_compact_full_air_reading_beats_cayenne():
    size = len(codec.encode_compact(17, FULL_AIR))
    assert cayenne_size(FULL_AIR) == 31
    assert size == 18
    assert size <= 51
    assert size <= 0.6 * cayenne_size(FULL_AIR)


@pytest.mark.parametrize("sample, field", [
    ("ttn-v3-uplink.json", ("uplink_message", "frm_payload")),
    ("chirpstack-v4-uplink.json", ("data",)),
])
def test_cayenne_samples(sample, field):
    doc = json.loads((SAMPLES / sample).read_text())
    for key in field:
        doc = doc[key]
    rec, skipped = codec.decode_cayenne(base64.b64decode(doc), {1: "temperature", 2: "humidity", 3: "pressure"})
    assert rec == {"seq": None, "t": None, "v": {"temperature": 21.7, "humidity": 63.5, "pressure": 1008.4}}
    assert skipped == []


def test_compact_round_trips_every_quantity_at_both_ends():
    for name, q in quantities.QUANTITIES.items():
        for value in (q["min"], q["max"]):
            rec = codec.decode_compact(codec.encode_compact(65535, {name: value}))
            assert rec == {"seq": 65535, "t": None, "v": {name: value}}, name


def test_status_uplink_bytes_by_hand():
    # A room sensor with a bad CRC, a wall sensor unplugged, two readings lost to a full buffer, a refused
    # settings change and 3.7 V of battery, on the 7th start with 3 readings waiting.
    faults = [{"sensor": "sht4x@0x44", "fault": "crc", "message": "…"},
              {"sensor": "ds18b20@288f3c6a01000055", "fault": "absent", "message": "…"}]
    data = codec.encode_status(faults, boot=7, buffered=3, dropped=2, untimed=0, refused=True, battery=3.7)
    assert data == bytes([1, 2 << 4 | 0b011 | 0b100, 0, 7, 0, 3, 0, 2, 0, 0, 148,
                          5 << 3 | 2, 0x44, 12 << 3 | 1, 0x55])
    assert len(data) == 15  # a status with nothing wrong is 6 bytes


def test_every_sensor_chip_and_fault_kind_has_a_status_code():
    from firmware.lora_status import STATUS_FAULTS, STATUS_SENSORS
    from firmware.sensors import common, registry

    assert sorted(set(registry.CHIPS) - set(STATUS_SENSORS)) == []
    kinds = {cls.kind for cls in vars(common).values() if isinstance(cls, type) and issubclass(cls, common.SensorError)}
    assert sorted((kinds | {"unknown"}) - set(STATUS_FAULTS)) == []


def test_a_full_status_uplink_fits_the_smallest_eu868_payload():
    faults = [{"sensor": "ds18b20@288f3c6a01000055", "fault": "absent"}] * 40
    data = codec.encode_status(faults, 65535, 65535, 65535, 65535, True, 6.0)
    assert len(data) == 41 <= 51  # DR0 (SF12) carries 51 bytes
    assert len(codec.decode_status(data)["faults"]) == 15
