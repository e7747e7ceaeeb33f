"""LoRaWAN uplinks from a network server (TTN v3 webhook, ChirpStack v4 HTTP integration) to ingest Messages.

Pure functions, in two steps because one needs the store in between:

1. `ttn_uplink(body)` / `chirpstack_uplink(body)` read the network server's JSON into an `Uplink`: the hub
   device it names, port, frame counter, payload bytes and the network's receive time.
2. `message(uplink, ...)` decodes the payload and makes the `Message` the one ingest pipeline takes, with the
   JSON form of the reading in it.

Which hub device: the TTN end-device id (`end_device_ids.device_id`) or the ChirpStack device name
(`deviceInfo.deviceName`) is the hub's device id, e.g. `air-7kq2m9xp`. No column to migrate, and the network
console shows the same name as the hub.

Payload, by port: on the compact port (setting `lorawan_compact_port`, 10 by default, the firmware's) the codec's
compact form; on the status port (`lorawan_status_port`, 12) the device's status (`status_message`), kept as its
last status; on any other port CayenneLPP, read through the device's channel map, or the default map (`*`).

Sequence numbers, so (device, seq) stays unique whatever the network's frame counter does (it restarts at 0 at
every OTAA join):
- compact form: it carries the low 16 bits of the device's own seq, which counts on across reboots and joins.
  The hub widens it against the highest seq it already holds for the device (`last_seq`), taking the one
  value with those low bits in the window [last - 16384, last + 49152): a resent reading (seq a little below
  the last) keeps its seq, a device that got far ahead (up to 49151 readings the hub never saw) too.
- CayenneLPP: the device sends no seq, so the seq is the network's receive time in milliseconds. An uplink
  delivered twice carries the same time and is stored once; two uplinks of one device never share a
  millisecond. These seqs are all above 2**40 (any time after 2004), so they never meet the compact ones, and
  widening looks only at seqs below 2**40.
The reading's time is the network's receive time: the compact form carries none.
"""

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from firmware import codec
from hub.ingest.pipeline import Message
from hub.models import Transport

SEQ_WINDOW = 1 << 16
SEQ_BACK = 1 << 14  # how far below the last seq a compact seq may be and still count as a resent reading
TIME_SEQ_FLOOR = 1 << 40  # CayenneLPP seqs (receive times in ms) are above this; device seqs below


class UplinkError(ValueError):
    """The body or its payload cannot be read; the message says what to fix. `device` once it is known."""

    def __init__(self, reason: str, device: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.device = device


@dataclass(frozen=True)
class Uplink:
    network: str  # "TTN" or "ChirpStack", for messages
    device: str
    dev_eui: str | None
    f_port: int | None  # None: no application payload (MAC commands only)
    f_cnt: int | None
    payload: bytes
    received_at: datetime | None  # the network's receive time


@dataclass
class Decoded:
    message: Message
    seq: int
    skipped: list[str] = field(default_factory=list)  # CayenneLPP channels the map does not name


def _json_object(body: bytes, network: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise UplinkError(f"the body is not JSON: set the {network} integration's format to JSON") from None
    if not isinstance(doc, dict):
        raise UplinkError(f"the body must be a JSON object, a {network} uplink message")
    return doc


def _time(text: Any, where: str, device: str) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise UplinkError(f"'{where}' must be an RFC 3339 time", device)
    stamp = text.strip()
    if stamp.endswith("Z"):
        stamp = stamp[:-1] + "+00:00"
    head, dot, rest = stamp.partition(".")
    if dot:  # TTN sends nanoseconds; Python reads at most microseconds
        digits = len(rest) - len(rest.lstrip("0123456789"))
        stamp = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise UplinkError(f"'{where}' is not an RFC 3339 time: {text[:40]!r}", device) from None
    if when.tzinfo is None:
        raise UplinkError(f"'{where}' has no time zone: {text[:40]!r}", device)
    return when


def _payload(value: Any, where: str, device: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise UplinkError(f"'{where}' must be base64 text", device)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UplinkError(f"'{where}' is not valid base64", device) from None


def _port(value: Any, where: str, device: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise UplinkError(f"'{where}' must be a LoRaWAN port number (0 to 255)", device)
    return value


def _counter(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ttn_uplink(body: bytes) -> Uplink:
    """Read a The Things Stack v3 uplink message, as its webhook POSTs it (format: JSON)."""
    doc = _json_object(body, "TTN webhook")
    ids = doc.get("end_device_ids")
    device = ids.get("device_id") if isinstance(ids, dict) else None
    if not isinstance(device, str) or not device:
        raise UplinkError("the body has no end_device_ids.device_id: is the webhook sending TTN v3 uplink messages?")
    up = doc.get("uplink_message")
    if not isinstance(up, dict):
        raise UplinkError("the body has no uplink_message: in the TTN webhook, enable only 'Uplink message' for "
                          "this address", device)
    received = _time(up.get("received_at"), "uplink_message.received_at", device)
    received = received or _time(doc.get("received_at"), "received_at", device)
    payload = _payload(up.get("frm_payload"), "uplink_message.frm_payload", device)
    return Uplink("TTN", device, ids.get("dev_eui"), _port(up.get("f_port"), "uplink_message.f_port", device),
                  _counter(up.get("f_cnt", 0)), payload, received)


def chirpstack_uplink(body: bytes) -> Uplink:
    """Read a ChirpStack v4 uplink event, as its HTTP integration POSTs it with ?event=up (encoding: JSON)."""
    doc = _json_object(body, "ChirpStack HTTP")
    info = doc.get("deviceInfo")
    device = info.get("deviceName") if isinstance(info, dict) else None
    if not isinstance(device, str) or not device:
        raise UplinkError("the body has no deviceInfo.deviceName: is the integration sending ChirpStack v4 "
                          "uplink events?")
    payload = _payload(doc.get("data"), "data", device)
    return Uplink("ChirpStack", device, info.get("devEui"), _port(doc.get("fPort"), "fPort", device),
                  _counter(doc.get("fCnt", 0)), payload, _time(doc.get("time"), "time", device))


def widen_seq(low16: int, last_seq: int | None) -> int:
    """The device seq whose low 16 bits are `low16`, in the window around the highest seq stored."""
    if last_seq is None:
        return low16
    base = max(last_seq - SEQ_BACK, 0)
    return base + (low16 - base) % SEQ_WINDOW


def channel_map(channels: dict[str, dict[int, str]], device: str) -> dict[int, str] | None:
    """The device's CayenneLPP channel map, else the default one ('*'), else None."""
    return channels.get(device) or channels.get("*")


def message(uplink: Uplink, *, compact_port: int, channels: dict[str, dict[int, str]], last_seq: int | None,
            received_at: datetime) -> Decoded:
    """Decode the uplink's payload into the Message (JSON form) the pipeline stores. Raises UplinkError."""
    device = uplink.device
    when = uplink.received_at or received_at
    t = int(when.timestamp())
    skipped: list[str] = []
    try:
        if uplink.f_port == compact_port:
            record = codec.decode_compact(uplink.payload)
            seq = widen_seq(record["seq"], last_seq)
        else:
            mapping = channel_map(channels, device)
            if mapping is None:
                raise UplinkError(f"port {uplink.f_port} carries CayenneLPP, and there is no channel map for "
                                  f"'{device}' nor a default one: set SENSING_LORAWAN_CAYENNE_CHANNELS", device)
            record, skipped = codec.decode_cayenne(uplink.payload, mapping)
            seq = int(when.timestamp() * 1000)
    except codec.CodecError as exc:
        raise UplinkError(f"port {uplink.f_port}: {exc}", device) from None
    if not record["v"]:
        raise UplinkError(f"port {uplink.f_port}: no value to store ({'; '.join(skipped)})", device)
    body = codec.encode_json(codec.record(seq, t, record["v"]))
    return Decoded(Message(Transport.lorawan, device, body, received_at), seq, skipped)


def status_message(uplink: Uplink, received_at: datetime) -> Message:
    """The status uplink as the Message (the status as JSON) the pipeline keeps as the device's last status,
    stamped with the network's receive time. Raises UplinkError."""
    try:
        status = codec.decode_status(uplink.payload)
    except codec.CodecError as exc:
        raise UplinkError(f"port {uplink.f_port}: {exc}", uplink.device) from None
    return Message(Transport.lorawan, uplink.device, codec.encode_json(status), uplink.received_at or received_at,
                   status=True)


def payload_excerpt(uplink: Uplink) -> bytes:
    """What a rejection shows of an uplink whose payload could not be read: port, counter and bytes in hex."""
    return f"f_port {uplink.f_port} f_cnt {uplink.f_cnt}: {uplink.payload.hex(' ')}".encode()
