# The kits a simulated device can carry: which emulated chips sit on which bus, and the series they follow.
# MicroPython common subset: `sensing simulate` reads KITS under CPython (what to register, which
# quantities to expect), device.py builds the chips under the unix port.
#
#   kit    kind  placement  chips                                   series
#   sds011 air   outdoor    BME280 (I2C) + SDS011 (UART)            outdoor
#   pms    air   outdoor    SCD4x (I2C) + PMS5003 (UART)            outdoor
#   damp   damp  indoor     SHT4x (I2C, the room) + DS18B20 (wall)  indoor

KITS = {  # quantities: what a reading of the kit holds, sorted
    "sds011": {"kind": "air", "placement": "outdoor", "uart_sensor": "sds011", "profile": "outdoor",
               "chips": "BME280 + SDS011",
               "quantities": ["humidity", "pm10", "pm2_5", "pressure", "temperature"]},
    "pms": {"kind": "air", "placement": "outdoor", "uart_sensor": "pms5003", "profile": "outdoor",
            "chips": "SCD4x + PMS5003",
            "quantities": ["co2", "humidity", "pm1", "pm10", "pm2_5", "temperature"]},
    "damp": {"kind": "damp", "placement": "indoor", "uart_sensor": "", "profile": "indoor",
             "chips": "SHT4x + DS18B20",
             "quantities": ["condensation_risk", "dew_point", "humidity", "surface_humidity",
                            "surface_temperature", "temperature"]},
}

# The kits of each kind, taken in turn: a fleet of air devices has both air kits.
BY_KIND = {"air": ["sds011", "pms"], "damp": ["damp"]}


def kit_for(kinds, i):
    """The kit of the i-th simulated device when the fleet has `kinds` (e.g. ["air", "damp"]) in turn."""
    kind = kinds[i % len(kinds)]
    choices = BY_KIND[kind]
    return choices[(i // len(kinds)) % len(choices)]


def build(kit, clock, seed):
    """(i2c chips, 1-Wire chips, UART chip or None) for `kit`, following a series of `seed` by `clock`."""
    from .chips.bosch import BME280Chip
    from .chips.maxim import DS18B20Chip
    from .chips.particulate import PMS5003Chip, SDS011Chip
    from .chips.sensirion import SCD4xChip, SHT4xChip
    from .chips.series import Series

    series = Series(KITS[kit]["profile"], seed)
    if kit == "sds011":
        i2c, onewire, uart = [BME280Chip()], [], SDS011Chip()
    elif kit == "pms":
        i2c, onewire, uart = [SCD4xChip()], [], PMS5003Chip()
    else:
        i2c, onewire, uart = [SHT4xChip()], [DS18B20Chip(serial=0x016A3C8F00 + seed)], None
    for chip in i2c + onewire + ([uart] if uart is not None else []):
        chip.series = series
        chip.clock = clock
    return i2c, onewire, uart
