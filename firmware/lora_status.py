# The status uplink: what a LoRaWAN device says about itself, in a few bytes, on its own port
# (lorawan.STATUS_PORT). MicroPython common subset. This is the encoder, apart from encode.py so that a board
# sending MQTT never loads it; codec.py gives it too, beside its decoder (codec.decode_status), for the hub.
#
# Version 1, big-endian:
#   byte 0      STATUS_VERSION (1)
#   byte 1      flags: bits 7-4 how many faults follow (0 to 15); bit 0 the last settings change was refused;
#               bit 1 readings were lost (the two counts follow); bit 2 the battery voltage follows; bit 3 is 0
#   bytes 2-3   the device's start (boot) number, modulo 65536
#   bytes 4-5   readings waiting in its buffer (65535: that many or more)
#   [4 bytes]   with bit 1: readings dropped (the buffer was full), readings untimed; 65535 or more: 65535
#   [1 byte]    with bit 2: the battery voltage in 1/40 V (0 to 6.375 V)
#   then        2 bytes per fault: (sensor code << 3) | fault code, then the last byte of the sensor's
#               address: its I2C address (sht4x@0x44: 0x44), or the last byte of a 1-Wire ROM; 0 for none.

STATUS_VERSION = 1
# Codes on the air: append only. Every chip in sensors/registry.py is here (a test checks); a name that is
# not counts as "other".
STATUS_SENSORS = ("other", "board", "i2c", "uart", "onewire", "sht4x", "sht3x", "bme280", "bmp280", "scd4x",
                  "sds011", "pms5003", "ds18b20")
STATUS_FAULTS = ("error", "absent", "crc", "stuck", "not_ready", "invalid", "unknown")  # sensors.md#faults
MAX_FAULTS = 15
REFUSED, LOSSES, BATTERY = 1, 2, 4
VOLT_STEPS = 40


def _u16(n):
    return min(max(n, 0), 0xFFFF)


def sensor_code(name):
    """(code, address byte) of a fault's sensor name: "sht4x@0x44" -> (5, 0x44); "sds011" -> (10, 0)."""
    at = name.find("@")
    chip = name[:at] if at >= 0 else name
    address = 0
    if at >= 0:
        try:
            address = int(name[-2:], 16)
        except ValueError:
            pass
    return (STATUS_SENSORS.index(chip) if chip in STATUS_SENSORS else 0), address


def encode_status(faults, boot, buffered, dropped=0, untimed=0, refused=False, battery=None):
    """The status uplink's bytes: `faults` as the status holds them ({"sensor", "fault", ...}; the first
    MAX_FAULTS), the start's number, readings in the buffer, readings lost, whether the last settings change
    was refused, and the battery's voltage (None: not known)."""
    faults = faults[:MAX_FAULTS]
    flags = len(faults) << 4
    if refused:
        flags |= REFUSED
    if dropped or untimed:
        flags |= LOSSES
    if battery is not None:
        flags |= BATTERY
    out = bytearray([STATUS_VERSION, flags, (boot >> 8) & 0xFF, boot & 0xFF])
    counts = [buffered]
    if flags & LOSSES:
        counts += [dropped, untimed]
    for n in counts:
        n = _u16(n)
        out += bytes([n >> 8, n & 0xFF])
    if flags & BATTERY:
        out.append(min(max(round(battery * VOLT_STEPS), 0), 255))
    for f in faults:
        code, address = sensor_code(f["sensor"])
        kind = STATUS_FAULTS.index(f["fault"]) if f["fault"] in STATUS_FAULTS else 0
        out.append(code << 3 | kind)
        out.append(address)
    return bytes(out)
