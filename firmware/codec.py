# The payload codec: readings to bytes and back. One source for the firmware (encode) and the hub (decode).
# MicroPython-compatible: no typing, dataclasses, enum or datetime; ints, floats, bytes, dicts, json, struct.
#
# JSON form (MQTT `sensing/v1/{device}/up` and HTTP ingest): one record, or a list of records.
#   {"seq": 17, "t": 1795860238, "v": {"temperature": 21.4, "humidity": 63.5}}
# seq: the device's reading number, monotonic across reboots; t: Unix epoch seconds when measured;
# v: quantity name -> value, names and units from the quantity registry.
#
# A decoded record is a dict {"seq": int, "t": int, "v": {name: number}}. Decoding separates what is
# malformed from what is well formed, so one bad record never costs the good ones beside it.

import json

try:
    from . import quantities
except ImportError:  # copied flat onto a board
    import quantities


class CodecError(ValueError):
    pass


def record(seq, t, values):
    return {"seq": seq, "t": t, "v": values}


def encode_json(records):
    """Encode one record (a dict) or a list of records as UTF-8 JSON bytes."""
    return json.dumps(records).encode()


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


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
    if not _is_number(t) or t < 0:
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
