"""Sensor drivers against emulated chips, under CPython and under the real MicroPython unix port.

The cases live in sensor_cases.py, in the MicroPython common subset; here each runs in-process under CPython
and, through one MicroPython run per module, under the unix port. A further run copies the drivers as a board
holds them (sensors/ beside quantities.py, no firmware package) to check their imports there.
"""

import json
import os
import shutil
import subprocess

import pytest

from tests.firmware import sensor_cases
from tests.firmware.support import REPO

CASES = sensor_cases.names()


def run_micropython(micropython, args, path, cwd=None):
    env = dict(os.environ, MICROPYPATH=str(path))
    out = subprocess.run([micropython, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def micropython_results(micropython):
    out = run_micropython(micropython, [str(REPO / "tests" / "firmware" / "sensor_cases.py")], REPO)
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("name", CASES)
def test_cpython(name):
    getattr(sensor_cases, name)()


@pytest.mark.parametrize("name", CASES)
def test_micropython(micropython_results, name):
    assert micropython_results[name] == "ok"


def test_every_case_ran_under_micropython(micropython_results):
    assert sorted(micropython_results) == CASES


FLAT_SCRIPT = """
import sys
from sensors import reading, registry, sht4x
from sensors.common import NoAnswer


class Absent:
    def scan(self):
        return [0x44]

    def writeto(self, address, buf, stop=True):
        raise OSError(19)

    def readfrom_into(self, address, buf, stop=True):
        raise OSError(19)


faults = []
print(registry.detect(Absent(), faults, sleep_ms=lambda ms: None))
print(faults[0]["message"])
values, faults = registry.read_all([sht4x.SHT4x(Absent(), sleep_ms=lambda ms: None)])
print(values, faults[0]["fault"], faults[0]["message"])
print(registry.driver_class("pms5003").__name__, reading.limits(reading._quantities(), ["pm10"])["pm10"][2])


class Damp:
    name = "damp"

    def read(self):
        return {"temperature": 20.0, "humidity": 60.0, "surface_temperature": 14.0}


print(reading.Sensors([Damp()], {}).read()[0]["condensation_risk"])
"""


def test_drivers_import_flat_as_on_a_board(micropython, tmp_path):
    shutil.copytree(REPO / "firmware" / "sensors", tmp_path / "sensors",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "firmware" / "quantities.py", tmp_path / "quantities.py")
    (tmp_path / "flat.py").write_text(FLAT_SCRIPT)
    out = run_micropython(micropython, ["flat.py"], tmp_path, cwd=tmp_path)
    assert out.splitlines() == [
        "[]",
        "a chip answers at 0x44 but is none of sht4x, sht3x",
        "{} absent sht4x at 0x44 does not answer (ENODEV, errno 19)",
        "PMS5003 µg/m³",
        "2",
    ]
