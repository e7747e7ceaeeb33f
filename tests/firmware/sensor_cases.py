# The sensor drivers against emulated chips, as plain functions named case_*: written in the MicroPython
# common subset so that test_sensors.py runs each one under CPython and, through main(), under the real
# MicroPython unix port:
#
#   MICROPYPATH=<repo> micropython tests/firmware/sensor_cases.py    -> {"case_name": "ok" | "why it failed"}
#
# Expected values are the datasheets' examples or worked out by hand from the datasheets' formulas.
# ruff: noqa: UP031  (percent formatting: the MicroPython common subset, as in firmware/)

from cli.simulator.chips.bosch import EXAMPLE_CALIBRATION, BME280Chip, BMP280Chip, calibration_bytes
from cli.simulator.chips.bus import EIO, Chip, Clock, FakeI2C, FakeOneWire, FakeUART
from cli.simulator.chips.maxim import DS18B20Chip
from cli.simulator.chips.maxim import crc8 as maxim_crc8
from cli.simulator.chips.particulate import PMS5003Chip, SDS011Chip
from cli.simulator.chips.sensirion import SCD4xChip, SHT3xChip, SHT4xChip
from cli.simulator.chips.sensirion import crc8 as sensirion_crc8
from cli.simulator.chips.series import Series
from firmware import quantities
from firmware.sensors import (
    bme280,
    common,
    damp,
    ds18b20,
    pms5003,
    reading,
    registry,
    scd4x,
    sds011,
    sensirion,
    sht3x,
    sht4x,
)

# ------------------------------------------------------------------------------------------------ helpers

def hexbytes(s):
    s = s.replace(" ", "")
    return bytes([int(s[i:i + 2], 16) for i in range(0, len(s), 2)])


def raises(cls, fn, *args):
    try:
        fn(*args)
    except cls as e:
        return e
    raise AssertionError("expected %s" % cls.__name__)


def near(a, b, tolerance):
    assert abs(a - b) <= tolerance, "%r is not within %r of %r" % (a, tolerance, b)


def equal(a, b):
    assert a == b, "%r != %r" % (a, b)


class ScriptedChip(Chip):
    """An I2C chip that answers every read with the next of the given byte strings: a datasheet's example."""

    def __init__(self, address, answers):
        Chip.__init__(self)
        self.address = address
        self.answers = list(answers)
        self.written = []

    def on_write(self, data):
        self.written.append(data)

    def on_read(self, n):
        return self.answers.pop(0)[:n]


def i2c_with(*chips):
    clock = Clock()
    return FakeI2C(chips, clock), clock


# ------------------------------------------------------------------------------------------------ CRCs

def case_sensirion_crc_matches_the_datasheet_examples():
    equal(sensirion.crc8(b"\xbe\xef"), 0x92)          # SHT3x/SHT4x/SCD4x datasheets
    equal(sensirion.crc8(hexbytes("01e0")), 0xB4)     # SCD4x: perform_forced_recalibration input 480
    equal(sensirion.crc8(hexbytes("0001")), 0xB0)     # SCD4x: set_automatic_self_calibration 1
    equal(sensirion.crc8(hexbytes("7fce")), 0x7B)     # SCD4x: forced recalibration response
    for w in range(0, 65536, 251):  # the driver's loop and the emulator's polynomial division agree
        equal(sensirion.crc8(bytes([w >> 8, w & 0xFF])), sensirion_crc8(w))


def case_dallas_crc_matches_the_app_note_example():
    rom = hexbytes("02 1c b8 01 00 00 00 a2")  # Maxim application note 27's worked ROM code
    equal(ds18b20.crc8(rom[:7]), 0xA2)
    equal(ds18b20.crc8(rom), 0)
    for n in range(0, 256, 7):
        data = bytes([n, 255 - n, n ^ 0x5A, 0x28])
        equal(ds18b20.crc8(data), maxim_crc8(data))


# ------------------------------------------------------------------------------------------------ SHT4x

def case_sht4x_decodes_known_bytes():
    # T word 0x6666 = 26214: -45 + 175 * 26214 / 65535 = 25.00 °C; RH word 0x8000 = 32768:
    # -6 + 125 * 32768 / 65535 = 56.50 %.
    chip = ScriptedChip(0x44, [hexbytes("6666 93 8000 a2")])
    i2c, clock = i2c_with(chip)
    equal(sht4x.SHT4x(i2c, sleep_ms=clock.sleep_ms).read(), {"temperature": 25.0, "humidity": 56.5})
    equal(chip.written, [b"\xfd"])
    assert clock.now_ms >= 8.3, "the driver must wait the 8.3 ms a high-precision measurement takes"


def case_sht4x_crops_humidity_to_0_and_100():
    low = ScriptedChip(0x44, [hexbytes("6666 93 0000 81")])
    high = ScriptedChip(0x44, [hexbytes("6666 93 ffff ac")])
    for chip, rh in ((low, 0.0), (high, 100.0)):
        i2c, clock = i2c_with(chip)
        equal(sht4x.SHT4x(i2c, sleep_ms=clock.sleep_ms).read()["humidity"], rh)


def case_sht4x_emulated_chip_round_trips():
    chip = SHT4xChip(temperature=21.37, humidity=48.2)
    i2c, clock = i2c_with(chip)
    equal(sht4x.SHT4x(i2c, sleep_ms=clock.sleep_ms).read(), {"temperature": 21.37, "humidity": 48.2})


def case_sht4x_chip_nacks_a_read_before_the_measurement_is_done():
    chip = SHT4xChip()
    i2c, clock = i2c_with(chip)
    i2c.writeto(0x44, b"\xfd")
    clock.sleep_ms(5)
    e = raises(OSError, i2c.readfrom, 0x44, 6)
    equal(e.args[0], EIO)


def case_sht4x_crc_error():
    chip = SHT4xChip()
    i2c, clock = i2c_with(chip)
    driver = sht4x.SHT4x(i2c, sleep_ms=clock.sleep_ms)
    chip.corrupt = 1
    e = raises(common.CRCError, driver.read)
    equal(e.kind, "crc")
    equal(str(e), "sht4x@0x44 sent word 0 with a bad CRC (0x%02x, expected 0x%02x)"
          % (sensirion_crc8(0x608C) ^ 1, sensirion_crc8(0x608C)))  # 21 °C: (21 + 45) * 65535 / 175
    equal(driver.read()["temperature"], 21.0)  # the next answer is good again


def case_sht4x_absent_chip():
    chip = SHT4xChip()
    i2c, clock = i2c_with(chip)
    driver = sht4x.SHT4x(i2c, sleep_ms=clock.sleep_ms)
    chip.present = False
    e = raises(common.NoAnswer, driver.read)
    equal(str(e), "sht4x at 0x44 does not answer (ENODEV, errno 19)")
    equal(e.kind, "absent")
    i2c.nack_errno = EIO  # as rp2 says it
    equal(str(raises(common.NoAnswer, driver.read)), "sht4x at 0x44 does not answer (EIO, errno 5)")


def case_sht4x_stuck_value():
    chip = SHT4xChip(temperature=20.0)
    i2c, clock = i2c_with(chip)
    driver = sht4x.SHT4x(i2c, sleep_ms=clock.sleep_ms, stuck_after=3)
    chip.stuck = True
    for t in (20.0, 20.5):
        chip.set(temperature=t)
        equal(driver.read()["temperature"], 20.0)
    chip.set(temperature=21.0)
    e = raises(common.StuckValue, driver.read)
    equal(str(e), "sht4x@0x44 has given the same raw value 3 times in a row")
    chip.stuck = False
    equal(driver.read()["temperature"], 21.0)


# ------------------------------------------------------------------------------------------------ SHT3x

def case_sht3x_decodes_known_bytes():
    # T word 0x6666: 25.00 °C as for the SHT4x; RH word 0x8000: 100 * 32768 / 65535 = 50.00 %.
    chip = ScriptedChip(0x45, [hexbytes("6666 93 8000 a2")])
    i2c, clock = i2c_with(chip)
    equal(sht3x.SHT3x(i2c, 0x45, sleep_ms=clock.sleep_ms).read(), {"temperature": 25.0, "humidity": 50.0})
    equal(chip.written, [b"\x24\x00"])
    assert clock.now_ms >= 15.5, "the driver must wait the 15.5 ms a high-repeatability measurement takes"


def case_sht3x_emulated_chip_round_trips_and_reports_crc():
    chip = SHT3xChip(temperature=-5.25, humidity=91.3)
    i2c, clock = i2c_with(chip)
    driver = sht3x.SHT3x(i2c, sleep_ms=clock.sleep_ms)
    equal(driver.read(), {"temperature": -5.25, "humidity": 91.3})
    chip.corrupt = 1
    equal(raises(common.CRCError, driver.read).kind, "crc")


# ------------------------------------------------------------------------------------------------ SCD4x

def case_scd4x_decodes_the_datasheet_example():
    # read_measurement example: 0x01f4 (500 ppm), 0x6667 (-45 + 175 * 26215 / 2^16 = 25.00 °C),
    # 0x5eb9 (100 * 24249 / 2^16 = 37.00 %), each word followed by its CRC.
    ready = hexbytes("8006") + bytes([sensirion.crc8(hexbytes("8006"))])
    chip = ScriptedChip(0x62, [ready, hexbytes("01f4 33 6667 a2 5eb9 3c")])
    i2c, clock = i2c_with(chip)
    driver = scd4x.SCD4x(i2c, sleep_ms=clock.sleep_ms)
    driver.started = True
    equal(driver.read(), {"co2": 500, "temperature": 25.0, "humidity": 37.0})
    equal(chip.written, [b"\xe4\xb8", b"\xec\x05"])


def case_scd4x_restarted_board_stops_then_starts_it():
    chip = SCD4xChip(co2=612, temperature=22.5, humidity=41.0, periodic=True)  # still measuring
    i2c, clock = i2c_with(chip)
    drivers = registry.detect(i2c, sleep_ms=clock.sleep_ms)
    equal([d.name for d in drivers], ["scd4x@0x62"])
    start = clock.now_ms
    equal(drivers[0].read(), {"co2": 612, "temperature": 22.5, "humidity": 41.0})
    assert clock.now_ms - start >= 5000, "the first measurement comes 5 s after the start"
    clock.sleep_ms(60000)
    chip.set(co2=1250)
    equal(drivers[0].read()["co2"], 1250)


def case_scd4x_that_stops_measuring_is_not_ready_then_restarted():
    chip = SCD4xChip()
    i2c, clock = i2c_with(chip)
    driver = scd4x.SCD4x(i2c, sleep_ms=clock.sleep_ms)
    driver.start()
    chip.periodic = False  # it lost power and came back idle
    e = raises(common.NotReady, driver.read)
    equal(str(e), "scd4x@0x62 has had no new measurement for 5500 ms")
    equal(driver.read()["co2"], 600)


# ------------------------------------------------------------------------------------------------ BME280 / BMP280

def case_bmp280_gives_the_datasheet_worked_example():
    # BMP280 datasheet: with its example trimming values, adc_T 519888 and adc_P 415148 give t_fine 128422,
    # T 25.08 °C and p 100653 Pa.
    chip = BMP280Chip(raw=(519888, 415148, 0))
    i2c, clock = i2c_with(chip)
    drivers = registry.detect(i2c, sleep_ms=clock.sleep_ms)
    equal([d.name for d in drivers], ["bmp280@0x76"])
    equal(drivers[0].read(), {"temperature": 25.08, "pressure": 1006.53})
    t, t_fine = bme280.compensate_t(EXAMPLE_CALIBRATION, 519888)
    equal((t, t_fine), (2508, 128422))


def case_bme280_integer_code_agrees_with_the_float_formulas():
    for t, p, h in ((21.0, 1013.25, 50.0), (-8.5, 985.0, 85.0), (33.3, 1030.0, 22.0)):
        chip = BME280Chip(address=0x77, temperature=t, pressure=p, humidity=h)
        i2c, clock = i2c_with(chip)
        reading = bme280.BME280(i2c, 0x77, sleep_ms=clock.sleep_ms).read()
        near(reading["temperature"], t, 0.011)
        near(reading["pressure"], p, 0.011)
        near(reading["humidity"], h, 0.011)


def case_bme280_signed_12_bit_humidity_words():
    c = dict(EXAMPLE_CALIBRATION)
    c["H4"] = -5
    c["H5"] = -100
    c["H6"] = -7
    equal(bme280.parse_calibration(*calibration_bytes(c)), c)


def case_bme280_and_bmp280_told_apart_by_chip_id():
    i2c, clock = i2c_with(BME280Chip(address=0x76), BMP280Chip(address=0x77))
    drivers = registry.detect(i2c, sleep_ms=clock.sleep_ms)
    equal([d.name for d in drivers], ["bme280@0x76", "bmp280@0x77"])
    equal(sorted(drivers[0].read()), ["humidity", "pressure", "temperature"])
    equal(sorted(drivers[1].read()), ["pressure", "temperature"])


def case_bme280_stuck_and_absent():
    chip = BME280Chip()
    i2c, clock = i2c_with(chip)
    driver = bme280.BME280(i2c, sleep_ms=clock.sleep_ms, stuck_after=2)
    chip.stuck = True
    driver.read()
    chip.set(temperature=25.0)
    equal(raises(common.StuckValue, driver.read).kind, "stuck")
    chip.present = False
    equal(str(raises(common.NoAnswer, driver.read)), "bme280 at 0x76 does not answer (ENODEV, errno 19)")


# ------------------------------------------------------------------------------------------------ SDS011

def case_sds011_decodes_the_protocol_example_and_a_field_frame():
    # Control protocol v1.3: AA C0 D4 04 3A 0A A1 60 1D AB is PM2.5 0x04D4 = 1236 -> 123.6 µg/m³,
    # PM10 0x0A3A = 2618 -> 261.8 µg/m³, checksum D4+04+3A+0A+A1+60 = 0x21D -> 0x1D.
    equal(sds011.decode(hexbytes("AA C0 D4 04 3A 0A A1 60 1D AB")), (123.6, 261.8))
    # A frame read off a sensor: 0x008C -> 14.0, 0x0094 -> 14.8, checksum 0x2D5 -> 0xD5.
    equal(sds011.decode(hexbytes("aa c0 8c 00 94 00 bc f9 d5 ab")), (14.0, 14.8))
    # The emulated chip sends exactly the protocol's bytes.
    equal(SDS011Chip(pm2_5=123.6, pm10=261.8, device_id=0xA160).frame(0), hexbytes("AAC0D4043A0AA1601DAB"))
    equal(str(raises(common.CRCError, sds011.decode, hexbytes("AA C0 D4 04 3A 0A A1 60 1E AB"))),
          "sds011 frame has a bad checksum (0x1e, expected 0x1d)")


def case_sds011_reads_a_fresh_frame_not_the_buffered_ones():
    clock = Clock()
    chip = SDS011Chip(pm2_5=50.0, pm10=80.0)
    driver = sds011.SDS011(FakeUART(chip, clock), sleep_ms=clock.sleep_ms)
    equal(driver.read(), {"pm2_5": 50.0, "pm10": 80.0})
    clock.sleep_ms(60000)  # a minute of frames waits in the UART buffer
    chip.set(pm2_5=7.4, pm10=9.9)
    equal(driver.read(), {"pm2_5": 7.4, "pm10": 9.9})


def case_sds011_frames_split_across_reads():
    clock = Clock()
    driver = sds011.SDS011(FakeUART(SDS011Chip(pm2_5=3.1, pm10=4.2), clock, chunk=3), sleep_ms=clock.sleep_ms)
    equal(driver.read(), {"pm2_5": 3.1, "pm10": 4.2})


def case_sds011_checksum_errors_silence_and_stuck():
    clock = Clock()
    chip = SDS011Chip()
    driver = sds011.SDS011(FakeUART(chip, clock), sleep_ms=clock.sleep_ms, stuck_after=3)
    chip.corrupt = 1  # one bad frame: the next good one is taken
    equal(driver.read(), {"pm2_5": 12.3, "pm10": 20.1})
    chip.corrupt = 1000
    equal(raises(common.CRCError, driver.read).kind, "crc")
    chip.corrupt = 0
    chip.present = False
    equal(str(raises(common.NoAnswer, driver.read)), "sds011 sent nothing in 2500 ms")
    chip.present = True
    chip.set(pm2_5=30.0)
    chip.stuck = True
    equal(driver.read()["pm2_5"], 30.0)
    chip.set(pm2_5=31.0)
    equal(driver.read()["pm2_5"], 30.0)
    equal(str(raises(common.StuckValue, driver.read)), "sds011 has given the same raw value 3 times in a row")


# ------------------------------------------------------------------------------------------------ PMS5003

def case_pms5003_decodes_a_frame_built_from_the_manual():
    words = [10, 14, 16, 9, 13, 16, 1800, 520, 80, 6, 2, 0, 0]  # CF=1 PM, atmospheric PM, counts, reserved
    body = b"\x42\x4d\x00\x1c" + b"".join([bytes([w >> 8, w & 0xFF]) for w in words])
    check = sum(body)  # 0x42 + 0x4d + 0x1c + the data bytes
    frame = body + bytes([check >> 8, check & 0xFF])
    equal(len(frame), 32)
    equal(pms5003.decode(frame), words)
    clock = Clock()
    chip = PMS5003Chip(pm1=9, pm2_5=13, pm10=16)
    equal(pms5003.PMS5003(FakeUART(chip, clock), sleep_ms=clock.sleep_ms).read(), {"pm1": 9, "pm2_5": 13, "pm10": 16})
    bad = frame[:31] + bytes([frame[31] ^ 1])
    e = raises(common.CRCError, pms5003.decode, bad)
    equal(str(e), "pms5003 frame has a bad check code (0x%04x, expected 0x%04x)" % (check ^ 1, check))


def case_pms5003_checksum_error_and_silence():
    clock = Clock()
    chip = PMS5003Chip(period_ms=2300)
    driver = pms5003.PMS5003(FakeUART(chip, clock), sleep_ms=clock.sleep_ms)
    equal(driver.read()["pm2_5"], 12)
    chip.corrupt = 1000
    equal(raises(common.CRCError, driver.read).kind, "crc")
    chip.present = False
    equal(raises(common.NoAnswer, driver.read).kind, "absent")


# ------------------------------------------------------------------------------------------------ DS18B20

def case_ds18b20_datasheet_temperature_table():
    table = ((0x07D0, 125.0), (0x0550, 85.0), (0x0191, 25.0625), (0x00A2, 10.125), (0x0008, 0.5),
             (0x0000, 0.0), (0xFFF8, -0.5), (0xFF5E, -10.125), (0xFE6F, -25.0625), (0xFC90, -55.0))
    for raw, celsius in table:
        equal(ds18b20.temperature(raw & 0xFF, raw >> 8), celsius)
    equal(ds18b20.temperature(0x91, 0x01, 0x1F), 25.0)  # 9-bit: the three lowest bits are undefined


def case_ds18b20_reads_each_chip_by_its_rom():
    clock = Clock()
    wall = DS18B20Chip(serial=0x000001A2B3C4, surface_temperature=13.25)
    corner = DS18B20Chip(serial=0x000001A2B3C5, surface_temperature=11.5)
    ow = FakeOneWire([wall, corner], clock)
    drivers = registry.detect_onewire(ow, sleep_ms=clock.sleep_ms)
    equal([d.rom for d in drivers], [wall.rom, corner.rom])
    equal([d.read() for d in drivers], [{"surface_temperature": 13.25}, {"surface_temperature": 11.5}])
    assert clock.now_ms >= 1500, "each conversion takes 750 ms"
    equal(wall.rom[0], 0x28)
    equal(ds18b20.crc8(wall.rom), 0)


def case_ds18b20_faults():
    clock = Clock()
    chip = DS18B20Chip(surface_temperature=9.0)
    driver = ds18b20.DS18B20(FakeOneWire([chip], clock), sleep_ms=clock.sleep_ms)
    equal(driver.read(), {"surface_temperature": 9.0})
    chip.corrupt = 1
    equal(raises(common.CRCError, driver.read).kind, "crc")
    chip.zeros = True
    equal(str(raises(common.NoAnswer, driver.read)), "ds18b20 sends all zeros: the data wire is held low")
    chip.zeros = False
    chip.present = False
    equal(str(raises(common.NoAnswer, driver.read)), "ds18b20 gives no presence pulse on the 1-Wire bus")


def case_ds18b20_power_on_value_is_not_a_reading():
    class NeverConverts(DS18B20Chip):
        def convert(self):
            pass

    clock = Clock()
    driver = ds18b20.DS18B20(FakeOneWire([NeverConverts()], clock), sleep_ms=clock.sleep_ms)
    equal(raises(common.BadValue, driver.read).kind, "invalid")


# ------------------------------------------------------------------------------------------------ damp

def case_dew_point_by_hand():
    # 20 °C, 50 %: gamma = ln 0.5 + 17.62 * 20 / 263.12 = -0.693147 + 1.339313 = 0.646166;
    # Td = 243.12 * 0.646166 / (17.62 - 0.646166) = 157.0958 / 16.973834 = 9.2552 °C.
    near(damp.dew_point(20.0, 50.0), 9.2552, 0.0005)
    # 25 °C, 60 %: gamma = -0.510826 + 1.633994 = 1.123168; Td = 273.0645 / 16.496832 = 16.5525...
    # worked the same way: 16.6931 °C.
    near(damp.dew_point(25.0, 60.0), 16.6931, 0.0005)
    near(damp.dew_point(0.0, 80.0), -3.0404, 0.0005)
    near(damp.dew_point(15.0, 100.0), 15.0, 1e-9)  # saturated air: the dew point is the air temperature


def case_surface_humidity_and_risk_by_hand():
    dew = damp.dew_point(20.0, 60.0)  # 11.9955 °C
    near(damp.surface_humidity(dew, 20.0), 60.0, 1e-6)  # a wall as warm as the room: the room's RH
    near(damp.surface_humidity(dew, 16.0), 77.14, 0.01)
    near(damp.surface_humidity(dew, 14.0), 87.73, 0.01)
    near(damp.surface_humidity(dew, 13.0), 93.63, 0.01)
    equal(damp.surface_humidity(dew, 10.0), 100.0)  # below the dew point: condensing
    equal([damp.condensation_risk(x) for x in (0.0, 69.99, 70.0, 79.99, 80.0, 89.99, 90.0, 100.0)],
          [0, 0, 1, 1, 2, 2, 3, 3])


def case_derive_needs_all_three():
    equal(damp.derive({"temperature": 20.0, "humidity": 60.0}), {})
    equal(damp.derive({"temperature": 20.0, "humidity": 60.0, "surface_temperature": 14.0}),
          {"dew_point": 12.0, "surface_humidity": 87.7, "condensation_risk": 2})


# ------------------------------------------------------------------------------------------------ registry

def case_detect_picks_the_drivers_for_the_chips_present():
    class Display(Chip):  # an OLED at 0x3c: not a sensor, left alone
        address = 0x3C

    i2c, clock = i2c_with(SCD4xChip(), BME280Chip(address=0x77), SHT4xChip(), SHT3xChip(address=0x45), Display())
    faults = []
    drivers = registry.detect(i2c, faults, sleep_ms=clock.sleep_ms)
    equal([d.name for d in drivers], ["sht4x@0x44", "sht3x@0x45", "bme280@0x77", "scd4x@0x62"])
    equal(faults, [])


def case_detect_reports_an_unknown_chip_at_a_sensor_address():
    bme680 = BME280Chip()
    bme680.CHIP_ID = 0x61
    bme680.regs[0xD0] = 0x61
    i2c, clock = i2c_with(bme680)
    faults = []
    equal(registry.detect(i2c, faults, sleep_ms=clock.sleep_ms), [])
    equal(faults, [{"sensor": "i2c@0x76", "fault": "unknown",
                    "message": "a chip answers at 0x76 but is none of bme280, bmp280"}])


def case_detect_survives_a_bus_that_cannot_scan():
    class Broken:
        def scan(self):
            raise OSError(110)

    faults = []
    equal(registry.detect(Broken(), faults), [])
    equal(faults[0]["fault"], "absent")


def case_read_all_never_raises_and_reports_each_fault():
    class Buggy:
        name = "buggy"

        def read(self):
            return 1 // 0

    class OutOfRange:
        name = "odd"

        def read(self):
            return {"humidity": 120.0, "co2": 700}

    clock = Clock()
    sht, bme = SHT4xChip(temperature=19.5, humidity=70.0), BME280Chip(temperature=20.2, humidity=66.0)
    i2c = FakeI2C([sht, bme], clock)
    pm = SDS011Chip()
    wall = DS18B20Chip(surface_temperature=13.0)
    drivers = registry.detect(i2c, sleep_ms=clock.sleep_ms)
    drivers.append(registry.make("sds011", FakeUART(pm, clock), sleep_ms=clock.sleep_ms))
    drivers += registry.detect_onewire(FakeOneWire([wall], clock), sleep_ms=clock.sleep_ms)
    drivers += [Buggy(), OutOfRange()]

    values, faults = registry.read_all(drivers)
    equal(values["temperature"], 19.5)  # the SHT4x is preferred to the BME280
    equal(values["co2"], 700)
    equal(sorted(values), ["co2", "condensation_risk", "dew_point", "humidity", "pm10", "pm2_5", "pressure",
                           "surface_humidity", "surface_temperature", "temperature"])
    equal([(f["sensor"], f["fault"]) for f in faults], [("buggy", "error"), ("odd", "invalid")])
    assert faults[0]["message"].startswith("buggy failed: ZeroDivisionError: "), faults[0]["message"]
    equal(faults[1]["message"], "odd gave humidity 120.0 % is outside the valid range 0.0 to 100.0 %")

    sht.corrupt = 1
    pm.present = False
    wall.present = False
    values, faults = registry.read_all(drivers)
    equal(values["temperature"], 20.2)  # the BME280 stands in for the SHT4x this cycle
    assert "pm2_5" not in values and "dew_point" not in values
    equal([(f["sensor"], f["fault"]) for f in faults][:3],
          [("sht4x@0x44", "crc"), ("sds011", "absent"), (drivers[3].name, "absent")])


def case_the_ranges_kept_for_the_loop_check_as_the_quantity_registry_does():
    ranges = reading.limits(quantities, ["humidity", "co2", "no_such_quantity"])
    equal(sorted(ranges), ["co2", "humidity"])
    for name, value in [("humidity", 120.0), ("humidity", -0.5), ("humidity", 55.5), ("co2", 40001),
                        ("co2", True), ("co2", "700"), ("co2", float("nan")), ("pm10", -1), ("radon", 3)]:
        equal(reading.check(ranges, name, value), quantities.check(name, value))
    equal(reading.limits(quantities), reading.limits(quantities, list(quantities.QUANTITIES)))


def case_sensors_read_with_the_ranges_as_read_all_with_the_registry():
    class OutOfRange:
        name = "odd"
        QUANTITIES = ("humidity", "co2")

        def read(self):
            return {"humidity": 120.0, "co2": 700}

    drivers = [OutOfRange()]
    sensors = registry.Sensors(drivers, reading.limits(quantities, OutOfRange.QUANTITIES))
    equal(sensors.read(), registry.read_all(drivers))
    equal(sensors.read()[0], {"co2": 700})


def case_make_names_the_known_chips():
    e = raises(ValueError, registry.make, "dht22", None)
    equal(str(e), "no driver for sensor 'dht22' (known: bme280, bmp280, ds18b20, pms5003, scd4x, sds011, sht3x, sht4x)")
    for chip in registry.CHIPS:
        cls = registry.driver_class(chip)
        equal(cls.NAME, chip)


class FakeMachine:
    """Stands in for the `machine` and `onewire` modules: records how buses are made, hands out fakes."""

    def __init__(self, i2c=None, uart=None, onewire=None):
        self.made = []
        self.i2c, self.uart, self.onewire = i2c, uart, onewire

    def Pin(self, pin):
        return ("pin", pin)

    def I2C(self, bus_id, sda, scl, freq):
        self.made.append(("I2C", bus_id, sda, scl, freq))
        return self.i2c

    def UART(self, bus_id, baudrate, bits, parity, stop, tx, rx):
        self.made.append(("UART", bus_id, baudrate, bits, parity, stop, tx, rx))
        return self.uart

    def OneWire(self, pin):
        self.made.append(("OneWire", pin))
        return self.onewire


PICO_W = {"board": "RPI_PICO_W", "i2c": {"id": 0, "sda": 4, "scl": 5, "freq": 100000},
          "uart": {"sensor": {"id": 0, "tx": 0, "rx": 1}, "modem": {"id": 1, "tx": 8, "rx": 9}},
          "onewire": {"pin": 22}, "led": {"pin": "LED", "kind": "gpio"}}


def case_open_buses_and_find_drivers_for_a_damp_kit():
    clock = Clock()
    machine = FakeMachine(FakeI2C([SHT4xChip(temperature=20.0, humidity=60.0)], clock), None,
                          FakeOneWire([DS18B20Chip(surface_temperature=14.0)], clock))
    buses = registry.open_buses(PICO_W, machine, machine)
    equal(machine.made, [("I2C", 0, ("pin", 4), ("pin", 5), 100000), ("OneWire", ("pin", 22))])
    drivers = registry.find_drivers(buses, sleep_ms=clock.sleep_ms)
    values, faults = registry.read_all(drivers)
    equal(faults, [])
    equal(values, {"temperature": 20.0, "humidity": 60.0, "surface_temperature": 14.0,
                   "dew_point": 12.0, "surface_humidity": 87.7, "condensation_risk": 2})


def case_open_buses_for_an_air_kit_with_a_uart_sensor():
    clock = Clock()
    machine = FakeMachine(FakeI2C([SCD4xChip(co2=900)], clock), FakeUART(PMS5003Chip(), clock))
    buses = registry.open_buses(PICO_W, machine, uart=True)
    equal(machine.made[1], ("UART", 0, 9600, 8, None, 1, ("pin", 0), ("pin", 1)))
    faults = []
    drivers = registry.find_drivers(buses, uart_sensor="pms5003", faults=faults, sleep_ms=clock.sleep_ms)
    equal([d.name for d in drivers], ["scd4x@0x62", "pms5003"])
    equal(registry.read_all(drivers)[0], {"co2": 900, "temperature": 22.0, "humidity": 45.0,
                                          "pm1": 8, "pm2_5": 12, "pm10": 15})
    registry.find_drivers(buses, uart_sensor="scd4x", faults=faults)
    equal(faults[-1]["message"], "'scd4x' is not a UART sensor (known: pms5003, sds011)")


def case_a_bus_that_cannot_be_opened_is_a_fault():
    class Refusing(FakeMachine):
        def I2C(self, bus_id, sda, scl, freq):
            raise ValueError("bad SCL pin")

    faults = []
    buses = registry.open_buses(PICO_W, Refusing(), uart=False, faults=faults)
    equal(buses, {"i2c": None, "uart": None, "onewire": None})
    equal(faults, [{"sensor": "i2c", "fault": "absent",
                    "message": "cannot open I2C 0 on SDA 4, SCL 5 (bad SCL pin)"}])


# ------------------------------------------------------------------------------------------------ series

def case_series_is_plausible_and_repeatable():
    indoor, again, outdoor = Series("indoor", 3), Series("indoor", 3), Series("outdoor", 3)
    for hour in range(0, 24):
        ms = hour * 3600000 + 123456
        equal(indoor.at(ms), again.at(ms))
        for s in (indoor, outdoor):
            v = s.at(ms)
            assert -10 < v["temperature"] < 35 and 5 <= v["humidity"] <= 99, v
            assert 380 <= v["co2"] <= 2000 and 0 < v["pm1"] <= v["pm2_5"] <= v["pm10"], v
            assert v["surface_temperature"] <= v["temperature"] + 0.2, v
    night, day = indoor.at(3 * 3600000), indoor.at(15 * 3600000)
    assert night["co2"] > day["co2"] + 500 and night["temperature"] < day["temperature"], (night, day)


def case_chips_follow_a_series_through_the_drivers():
    clock = Clock(15 * 3600000)
    series = Series("indoor", 5)
    sht, wall, pm = SHT4xChip(), DS18B20Chip(), PMS5003Chip()
    for chip in (sht, wall, pm):
        chip.series = series
    drivers = registry.detect(FakeI2C([sht], clock), sleep_ms=clock.sleep_ms)
    drivers += registry.detect_onewire(FakeOneWire([wall], clock), sleep_ms=clock.sleep_ms)
    drivers.append(registry.make("pms5003", FakeUART(pm, clock), sleep_ms=clock.sleep_ms))
    values, faults = registry.read_all(drivers)
    equal(faults, [])
    expected = series.at(clock.now_ms)
    near(values["temperature"], expected["temperature"], 0.011)
    near(values["surface_temperature"], expected["surface_temperature"], 0.07)
    equal(values["condensation_risk"] in (0, 1, 2, 3), True)


# ------------------------------------------------------------------------------------------------ runner

def names():
    return sorted([n for n in globals() if n.startswith("case_")])


def main():
    import json
    results = {}
    for name in names():
        try:
            globals()[name]()
            results[name] = "ok"
        except Exception as e:
            results[name] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
