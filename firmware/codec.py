# The payload codec: readings to bytes and back. One source for the firmware (encode) and the hub (decode).
# MicroPython-compatible: no typing, dataclasses, enum or datetime; ints, floats, bytes, dicts, json, struct.
# The encoders (record, encode_json, encode_compact) are written in encode.py, which is all a board loads,
# and are given here under the same names: the hub imports this module, for both directions.
#
# JSON form (MQTT `sensing/v1/{device}/up` and HTTP ingest): one record, or a list of records.
#   {"seq": 17, "t": 1795860238, "v": {"temperature": 21.4, "humidity": 63.5}}
# seq: the device's reading number, monotonic across reboots; t: Unix epoch seconds when measured;
# v: quantity name -> value, names and units from the quantity registry.
#
# A decoded record is a dict {"seq": int, "t": int, "v": {name: number}}. Decoding separates what is
# malformed from what is well formed, so one bad record never costs the good ones beside it.
#
# Compact form (LoRaWAN, where every byte costs airtime), version 1, big-endian, bit-packed:
#   byte 0      COMPACT_VERSION (1)
#   bytes 1-2   seq modulo 65536 (the hub widens it, as LoRaWAN network servers widen the frame counter)
#   bytes 3-4   presence bitmap: bit (id - 1) set when the quantity with that registry id is present
#   then        for each present quantity in id order, round(value * scale) - round(min * scale) as an
#               unsigned integer of the registry's `bits` width, most significant bit first; the last byte
#               is padded with zero bits.
# There is no time on the air: the network stamps its receive time. decode_compact gives "t": None.
#
# CayenneLPP (what many off-the-shelf LoRaWAN devices send): decode_cayenne maps its channels to
# quantities with a channel map {channel: quantity name} that the device's registration supplies.
#
# The device's status: decode_status_json reads the JSON an MQTT device keeps retained on
# `sensing/v1/{device}/status` (firmware/status.py); decode_status reads the status uplink of a LoRaWAN device
# (its wire format and encoder are in lora_status.py) into the same shape. Both give a dict of
#   state ("online", "offline", "asleep", "config_invalid"), and any of: message (one sentence),
#   faults [{"sensor", "fault", "message"?}], dropped, untimed, buffered, boot, battery_voltage.

import json
import struct

try:
    from . import lora_status, quantities
    from .encode import COMPACT_VERSION, CodecError, _compact_fields, _is_int, encode_compact, encode_json, record
    from .lora_status import encode_status
except ImportError:  # copied flat onto a board
    import lora_status
    import quantities
    from encode import COMPACT_VERSION, CodecError, _compact_fields, _is_int, encode_compact, encode_json, record
    from lora_status import encode_status

__all__ = ("COMPACT_VERSION", "CAYENNE_TYPES", "CodecError", "check_record", "decode_cayenne", "decode_compact",
           "decode_json", "decode_status", "decode_status_json", "encode_compact", "encode_json", "encode_status",
           "record", "validate")


def _is_number(x):
    return (isinstance(x, int) or isinstance(x, float)) and not isinstance(x, bool)


def check_record(rec):
    """Return None if `rec` has the shape of a record, else one sentence saying what is wrong."""
    if not isinstance(rec, dict):
        return "a record must be a JSON object, not %s" % type(rec).__name__
    seq = rec.get("seq")
    if not _is_int(seq) or seq < 0:
        return "'seq' must be a non-negative integer"
    t = rec.get("t")
    # Written so that NaN fails too; 1e11 s is the year 5138, far past any real clock and any date type.
    if not _is_number(t) or not (0 <= t < 1e11):
        return "'t' must be Unix epoch seconds (a non-negative number)"
    v = rec.get("v")
    if not isinstance(v, dict) or not v:
        return "'v' must be an object of quantity name to value, with at least one entry"
    for key in rec:
        if key not in ("seq", "t", "v"):
            return "unexpected field '%s' (a record has seq, t and v)" % key
    return None


def decode_json(data):
    """Decode a JSON message into (records, errors).

    records: well-formed records, t as an int; errors: (index, sentence) for each malformed record.
    Raises CodecError when the message as a whole cannot be read (not UTF-8, not JSON, wrong shape).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode()
        except Exception:
            raise CodecError("the message is not UTF-8 text")
    try:
        doc = json.loads(data)
    except Exception:
        raise CodecError("the message is not valid JSON")
    if isinstance(doc, dict):
        doc = [doc]
    elif not isinstance(doc, list):
        raise CodecError("the message must be a record object or a list of records")
    if not doc:
        raise CodecError("the message holds no records")
    records = []
    errors = []
    for i in range(len(doc)):
        rec = doc[i]
        why = check_record(rec)
        if why is None:
            records.append(record(rec["seq"], int(rec["t"]), rec["v"]))
        else:
            errors.append((i, why))
    return records, errors


def validate(values):
    """Split a record's values into (good, bad): good {name: value}; bad [(name, sentence)]."""
    good = {}
    bad = []
    for name in values:
        why = quantities.check(name, values[name])
        if why is None:
            good[name] = values[name]
        else:
            bad.append((name, why))
    return good, bad


def decode_compact(data):
    """Decode the compact binary form into a record {"seq": int, "t": None, "v": {name: number}}.
    Raises CodecError, one sentence, when the bytes are not a compact reading."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError("a compact payload must be bytes")
    data = bytes(data)
    if len(data) < 5:
        raise CodecError("the compact payload is truncated: %d bytes, a header alone is 5" % len(data))
    version, seq, bitmap = struct.unpack(">BHH", data[:5])
    if version != COMPACT_VERSION:
        raise CodecError("unknown compact payload version %d (this codec reads version %d)"
                         % (version, COMPACT_VERSION))
    if bitmap == 0:
        raise CodecError("the compact payload holds no values")
    fields = []
    nbits = 0
    for qid, name, q in _compact_fields():
        if bitmap & (1 << (qid - 1)):
            fields.append((name, q))
            nbits += q["bits"]
            bitmap &= ~(1 << (qid - 1))
    if bitmap:
        first = 1
        while not bitmap & 1:
            bitmap >>= 1
            first += 1
        raise CodecError("the compact payload names unknown quantity id %d" % first)
    need = 5 + (nbits + 7) // 8
    if len(data) < need:
        raise CodecError("the compact payload is truncated: %d bytes, its bitmap needs %d" % (len(data), need))
    if len(data) > need:
        raise CodecError("the compact payload has %d bytes, its bitmap needs %d" % (len(data), need))
    values = {}
    pos = 5
    acc = 0
    nacc = 0
    for name, q in fields:
        while nacc < q["bits"]:
            acc = (acc << 8) | data[pos]
            pos += 1
            nacc += 8
        nacc -= q["bits"]
        n = (acc >> nacc) + round(q["min"] * q["scale"])
        acc &= (1 << nacc) - 1
        value = _scaled(n, q["scale"])
        if value > q["max"]:
            raise CodecError("the compact payload carries %s %s %s, above its maximum %s %s"
                             % (name, value, q["unit"], q["max"], q["unit"]))
        values[name] = value
    return record(seq, None, values)


def _scaled(n, scale):
    # Integers stay integers when the scale is 1 (co2 in ppm), so they print as they were sent.
    if scale == 1:
        return n
    return n / scale


# CayenneLPP data types: type byte -> (name, size in bytes, signed, scale). Every type's size is needed to
# step over it; the value of the multi-axis types is not read.
CAYENNE_TYPES = {
    0x00: ("digital input", 1, False, 1),
    0x01: ("digital output", 1, False, 1),
    0x02: ("analog input", 2, True, 100),
    0x03: ("analog output", 2, True, 100),
    0x65: ("illuminance", 2, False, 1),
    0x66: ("presence", 1, False, 1),
    0x67: ("temperature", 2, True, 10),
    0x68: ("humidity", 1, False, 2),
    0x71: ("accelerometer", 6, None, 1),
    0x73: ("barometer", 2, False, 10),
    0x86: ("gyrometer", 6, None, 1),
    0x88: ("gps location", 9, None, 1),
}


def decode_cayenne(data, channels):
    """Decode a CayenneLPP payload into (record, skipped).

    channels: {channel number: quantity name}. record: {"seq": None, "t": None, "v": {name: number}} for
    the mapped channels; skipped: one sentence per channel the map does not name (its value is dropped).
    Raises CodecError, one sentence, when the bytes are not CayenneLPP.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError("a CayenneLPP payload must be bytes")
    data = bytes(data)
    if not data:
        raise CodecError("the CayenneLPP payload is empty")
    values = {}
    skipped = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise CodecError("the CayenneLPP payload is truncated after byte %d" % pos)
        channel = data[pos]
        kind = data[pos + 1]
        t = CAYENNE_TYPES.get(kind)
        if t is None:
            raise CodecError("unknown CayenneLPP type 0x%02x on channel %d" % (kind, channel))
        tname, size, signed, scale = t
        start = pos + 2
        pos = start + size
        if pos > len(data):
            raise CodecError("the CayenneLPP payload is truncated in channel %d (%s)" % (channel, tname))
        name = channels.get(channel)
        if name is None:
            skipped.append("channel %d (%s) is not in the channel map" % (channel, tname))
            continue
        if signed is None:
            raise CodecError("channel %d is a CayenneLPP %s, which is not a single quantity" % (channel, tname))
        n = 0
        for i in range(start, pos):
            n = (n << 8) | data[i]
        if signed and n >= 1 << (8 * size - 1):
            n -= 1 << (8 * size)
        values[name] = _scaled(n, scale)
    return record(None, None, values), skipped


# --- The device's status -------------------------------------------------------------------------------

STATES = ("online", "offline", "asleep", "config_invalid")
REFUSED_MESSAGE = "config refused: the device's log says why"  # all a status uplink can say of it
MAX_STATUS_FAULTS = 32
TEXT_LIMITS = {"message": 300, "sensor": 64, "fault": 32}
COUNTS = ("dropped", "untimed", "buffered", "boot")


def _text(value, what, limit):
    if not isinstance(value, str):
        return "'%s' in a status must be text" % what
    if len(value) > limit:
        return "'%s' in a status is longer than %d characters" % (what, limit)
    return None


def _check_fault(fault):
    if not isinstance(fault, dict):
        return "each fault in a status must be an object with 'sensor' and 'fault'"
    for key in fault:
        if key not in ("sensor", "fault", "message"):
            return "unexpected field '%s' in a fault (a fault has sensor, fault and message)" % key
    for key in ("sensor", "fault"):
        if not fault.get(key):
            return "a fault needs a '%s'" % key
    for key in fault:
        why = _text(fault[key], key, TEXT_LIMITS[key])
        if why is not None:
            return why
    return None


def check_status(status):
    """Return None if `status` has the shape of a device's status, else one sentence saying what is wrong."""
    if not isinstance(status, dict):
        return "a status must be a JSON object"
    if status.get("state") not in STATES:
        return "a status needs a 'state': %s" % ", ".join(STATES)
    for key in status:
        value = status[key]
        if key == "state":
            continue
        if key == "message":
            why = _text(value, key, TEXT_LIMITS[key])
        elif key == "faults":
            if not isinstance(value, list) or len(value) > MAX_STATUS_FAULTS:
                return "'faults' in a status must be a list of at most %d faults" % MAX_STATUS_FAULTS
            why = None
            for fault in value:
                why = why or _check_fault(fault)
        elif key in COUNTS:
            why = None if _is_int(value) and value >= 0 else "'%s' in a status must be a non-negative integer" % key
        elif key == "battery_voltage":
            why = quantities.check(key, value)
        else:
            why = "unexpected field '%s' in the status" % key
        if why is not None:
            return why
    return None


def decode_status_json(data):
    """The status a device keeps retained on its MQTT status topic, as a dict. Raises CodecError, one
    sentence, when it is not one."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode()
        except Exception:
            raise CodecError("the status is not UTF-8 text")
    try:
        status = json.loads(data)
    except Exception:
        raise CodecError("the status is not valid JSON")
    why = check_status(status)
    if why is not None:
        raise CodecError(why)
    return status


def _sensor_name(code, address):
    chip = lora_status.STATUS_SENSORS[code]
    if not address:
        return chip
    if chip == "ds18b20":  # the last byte of its 8-byte ROM
        return "ds18b20@\u2026%02x" % address
    return "%s@0x%02x" % (chip, address)


def decode_status(data):
    """The status uplink of a LoRaWAN device (lora_status.py) as the dict decode_status_json gives. Raises
    CodecError, one sentence, when the bytes are not one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError("a status uplink must be bytes")
    data = bytes(data)
    if len(data) < 6:
        raise CodecError("the status uplink is truncated: %d bytes, a header alone is 6" % len(data))
    version, flags, boot, buffered = struct.unpack(">BBHH", data[:6])
    if version != lora_status.STATUS_VERSION:
        raise CodecError("unknown status uplink version %d (this codec reads version %d)"
                         % (version, lora_status.STATUS_VERSION))
    if flags & 8:
        raise CodecError("the status uplink sets flag bit 3, which this codec does not know")
    count = flags >> 4
    need = 6 + (4 if flags & lora_status.LOSSES else 0) + (1 if flags & lora_status.BATTERY else 0) + 2 * count
    if len(data) != need:
        raise CodecError("the status uplink has %d bytes, its flags need %d" % (len(data), need))
    status = {"state": "online", "message": REFUSED_MESSAGE if flags & lora_status.REFUSED else "",
              "boot": boot, "buffered": buffered, "dropped": 0, "untimed": 0, "faults": []}
    pos = 6
    if flags & lora_status.LOSSES:
        status["dropped"], status["untimed"] = struct.unpack(">HH", data[6:10])
        pos = 10
    if flags & lora_status.BATTERY:
        status["battery_voltage"] = data[pos] / lora_status.VOLT_STEPS
        pos += 1
    while pos < len(data):
        code, kind = data[pos] >> 3, data[pos] & 7
        if code >= len(lora_status.STATUS_SENSORS):
            raise CodecError("the status uplink names unknown sensor code %d" % code)
        if kind >= len(lora_status.STATUS_FAULTS):
            raise CodecError("the status uplink names unknown fault code %d" % kind)
        status["faults"].append({"sensor": _sensor_name(code, data[pos + 1]),
                                 "fault": lora_status.STATUS_FAULTS[kind]})
        pos += 2
    return status
