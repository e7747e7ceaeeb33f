# Emulated sensor chips, for `sensing simulate` and the firmware tests: fake machine.I2C, UART and
# onewire.OneWire objects hosting chips that answer with their datasheets' bytes. MicroPython common subset:
# the same chips run under CPython and the MicroPython unix port.
#
#   clock = Clock()
#   i2c = FakeI2C([SHT4xChip(temperature=21.5, humidity=48.0)], clock)
#   driver = SHT4x(i2c, sleep_ms=clock.sleep_ms)   # the driver's waits move the simulated clock
#
# Every chip takes faults: chip.present = False (NACK / no presence pulse / silence), chip.corrupt = n (the
# next n answers carry a wrong CRC or checksum), chip.stuck = True (the raw value stops changing), and
# chip.series = a series.Series (plausible indoor or outdoor values that move with the clock).
