# What the firmware sends: a reading's record, its JSON form (MQTT, HTTP) and its compact form (LoRaWAN).
# MicroPython common subset. The hub's decoders are in codec.py, which gives these under the same names: the
# wire formats are described there. A board running MQTT loads only this file: the decoders, and the quantity
# registry (which the compact form needs), stay off its heap.

import io
import json
import struct


class CodecError(ValueError):
    pass


def _quantities():
    # Imported when the compact form is first used: a board sending JSON never needs the registry.
    try:
        from . import quantities
    except ImportError:  # copied flat onto a board
        import quantities
    return quantities


def record(seq, t, values):
    return {"seq": seq, "t": t, "v": values}


def encode_json(records):
    """Encode one record (a dict) or a list of records as UTF-8 JSON bytes.

    Keys come out in one fixed order (seq, t, v, then the rest sorted; quantity names sorted), so the same
    record gives the same bytes under CPython and MicroPython, whose dicts do not keep insertion order.
    """
    # Written piece by piece into one stream: a board encodes a reading every cycle, and joining the
    # pieces as strings made some 60 short-lived objects (3 KB of heap) per reading.
    out = io.StringIO()
    _write(records, out)
    return out.getvalue().encode()


_FIRST = ("seq", "t", "v")


def _write(obj, out):
    if isinstance(obj, dict):
        out.write("{")
        sep = ""
        for k in _FIRST:
            if k in obj:
                sep = _item(out, sep, k, obj[k])
        for k in sorted(obj):
            if k not in _FIRST:
                sep = _item(out, sep, k, obj[k])
        out.write("}")
    elif isinstance(obj, (list, tuple)):
        out.write("[")
        for i in range(len(obj)):
            if i:
                out.write(", ")
            _write(obj[i], out)
        out.write("]")
    else:
        json.dump(obj, out)


def _item(out, sep, key, value):
    out.write(sep)
    json.dump(key, out)
    out.write(": ")
    _write(value, out)
    return ", "


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


COMPACT_VERSION = 1


def _compact_fields():
    # (id, name, entry) for every quantity the bitmap can carry, in id order.
    quantities = _quantities()
    out = []
    for name in quantities.QUANTITIES:
        q = quantities.QUANTITIES[name]
        out.append((q["id"], name, q))
    out.sort(key=lambda f: f[0])
    return out


def encode_compact(seq, values):
    """Encode one reading (seq, {name: value}) in the compact binary form. Raises CodecError on a value
    that cannot be sent: unknown quantity, not a number, or outside its valid range."""
    if not _is_int(seq) or seq < 0:
        raise CodecError("seq must be a non-negative integer")
    if not values:
        raise CodecError("a compact reading needs at least one value")
    quantities = _quantities()
    for name in values:
        why = quantities.check(name, values[name])
        if why is not None:
            raise CodecError(why)
    bitmap = 0
    acc = 0  # bit accumulator; holds at most 7 + 16 bits, a small int on every port
    nacc = 0
    body = bytearray()
    for qid, name, q in _compact_fields():
        if name not in values:
            continue
        bitmap |= 1 << (qid - 1)
        n = round(values[name] * q["scale"]) - round(q["min"] * q["scale"])
        acc = (acc << q["bits"]) | n
        nacc += q["bits"]
        while nacc >= 8:
            nacc -= 8
            body.append((acc >> nacc) & 0xFF)
        acc &= (1 << nacc) - 1
    if nacc:
        body.append((acc << (8 - nacc)) & 0xFF)
    return struct.pack(">BHH", COMPACT_VERSION, seq & 0xFFFF, bitmap) + bytes(body)
