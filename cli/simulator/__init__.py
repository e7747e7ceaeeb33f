# What `sensing simulate` runs under the MicroPython unix port: the emulated chips (chips/) and a device
# (device.py) that runs the real firmware on a fake `machine` whose buses host them. MicroPython common
# subset, imported as cli.simulator.* with MICROPYPATH set to the folder holding `cli` and `firmware`.
