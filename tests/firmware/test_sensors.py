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


# Sensors as the loop holds them: the drivers' modules are let go between readings and imported again for
# each, while what the drivers know stays (the BME280's calibration is read once, the SCD4x is started once,
# a stuck value is still counted across readings). The chips are scripted on fake buses; nothing imports a
# driver module but the firmware itself.
BETWEEN_READINGS_SCRIPT = """
import gc
import sys
from cli.simulator.chips.bosch import BME280Chip
from cli.simulator.chips.bus import Clock, FakeI2C
from cli.simulator.chips.sensirion import SCD4xChip
from firmware.sensors import registry

clock = Clock(0)


class CountingI2C(FakeI2C):
    def __init__(self, chips, clock):
        FakeI2C.__init__(self, chips, clock)
        self.calibrations = 0
        self.starts = 0

    def readfrom_mem(self, address, register, n):
        if register == 0x88:
            self.calibrations += 1
        return FakeI2C.readfrom_mem(self, address, register, n)

    def writeto(self, address, buf, stop=True):
        if bytes(buf) == b"\\x21\\xb1":  # SCD4x start_periodic_measurement
            self.starts += 1
        return FakeI2C.writeto(self, address, buf, stop)


scd4x = SCD4xChip()
i2c = CountingI2C([scd4x, BME280Chip(temperature=20.5)], clock)
drivers = registry.detect(i2c, sleep_ms=clock.sleep_ms)
reading = sys.modules["firmware.sensors.reading"]
sensors = reading.Sensors(drivers, {})
drivers = registry = None
reading.let_go([])


def drivers_in_heap():
    return sorted([n for n in sys.modules if n.startswith("firmware.sensors.") and n != "firmware.sensors.reading"])


print(drivers_in_heap())
for i in range(3):
    clock.sleep_ms(60000)
    scd4x.set(co2=500 + i)  # the room's air changes; the BME280's values do not
    values, faults = sensors.read()
    print(sorted(values), faults, drivers_in_heap())
print(i2c.calibrations, i2c.starts)
clock.sleep_ms(60000)
steps = []
for got in sensors.steps():
    steps.append(got is None and "between" or sorted(got[0]))
    if got is None:
        print(drivers_in_heap())
print(steps)
print([(f["sensor"], f["fault"]) for f in faults])
for i in range(6):
    clock.sleep_ms(60000)
    scd4x.set(co2=600 + i)
    values, faults = sensors.read()
print([(f["sensor"], f["fault"]) for f in faults], "pressure" in values)
"""


def test_sensors_let_the_drivers_code_go_between_readings_and_keep_what_they_know(micropython, tmp_path):
    (tmp_path / "between.py").write_text(BETWEEN_READINGS_SCRIPT)
    out = run_micropython(micropython, [str(tmp_path / "between.py")], REPO).splitlines()
    quantities = "['co2', 'humidity', 'pressure', 'temperature']"
    assert out == [
        "[]",  # no driver's module in the heap between readings
        f"{quantities} [] []",
        f"{quantities} [] []",
        f"{quantities} [] []",
        "1 1",  # calibration read and measuring started once, at start
        "['firmware.sensors.common']",  # between two chips: the first chip's module is gone
        "['firmware.sensors.common']",
        f"['between', 'between', {quantities}]",
        "[]",
        # the BME280's raw values, the same ten times across readings, whose driver was made afresh for each
        "[('bme280@0x76', 'stuck')] False",
    ]
