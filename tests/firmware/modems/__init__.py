# Emulated AT-command LoRaWAN modems for the firmware tests, and a fake UART with a virtual clock that joins
# them to the real drivers. Written in the MicroPython common subset: they run inside the MicroPython unix
# port beside the firmware, so a 20 s join takes no real time.
