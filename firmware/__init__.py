# Firmware package. The same files run on the boards (MicroPython) and are imported by the hub (CPython):
# `quantities` and `codec` are the one source of the shared vocabulary, written in the common subset.
