# The firmware's main loop: read the sensor, number the reading, keep it, send it, forget it once acknowledged.
# MicroPython common subset. The sensor, clock, sleep and MQTT client are injectable; run() touches nothing
# until it is called.
#
# A reading becomes a record {"seq", "t", "v"} (seq.py: never reused, even across a power cut), goes into
# the flash buffer (buffer.py) before any send, and leaves it only after the broker's PUBACK, in batches of
# up to `batch` readings per message, oldest first. A resent record is the same bytes, so it keeps its seq;
# the hub drops a repeat. A reading taken before the time is known (clock.py) is kept with its boot id and
# uptime instead of "t", and gets its time just before it is sent.

import json
import time

try:
    import random
except ImportError:  # every board build has it; a stripped-down port might not
    random = None

try:
    from . import codec, mqtt
    from .buffer import Buffer, Files, join
    from .clock import Clock, board_time, next_boot, sntp
    from .seq import SeqCounter
    from .sensors.emulated import EmulatedSensor
except ImportError:  # copied flat onto a board
    import codec
    import mqtt
    from buffer import Buffer, Files, join
    from clock import Clock, board_time, next_boot, sntp
    from seq import SeqCounter
    from sensors.emulated import EmulatedSensor

DEFAULTS = {
    "broker_host": "127.0.0.1",
    "broker_port": 1883,
    "interval": 60,          # seconds between readings
    "cycles": 0,             # readings to take before returning; 0 runs forever
    "drain_seconds": 0,      # after the last cycle, keep retrying the buffer this long
    "state_dir": "/",        # where the seq counter, the buffer and the clock's anchors live
    "seed": 1,               # the emulated sensor's seed
    "keepalive": 60,
    "timeout": 5,            # seconds to wait for the broker (CONNACK, PUBACK) and the time server
    "backoff_initial": 1,    # seconds before the first retry after a failure, doubled each failure
    "backoff_max": 300,
    "backoff_jitter": 0.5,   # each wait is shortened by a random part of up to this fraction
    "batch": 20,             # readings per MQTT message at most
    "batch_bytes": 8192,     # bytes per MQTT message at most (the hub takes up to 65536)
    "buffer_bytes": 65536,   # flash kept for readings not yet sent; the oldest go when it is full
    "ntp_host": "pool.ntp.org",
    "ntp_port": 123,
    "ntp_every": 21600,      # seconds between asking NTP again, once it has answered
}
REQUIRED = ("device_id", "secret")
SEGMENT = 4096               # the buffer's segment: one flash erase block on ESP32 and rp2
HUB_MAX_MESSAGE = 65536


def load_config(path):
    """Read a JSON config file and fill in the defaults. Raises ValueError with one sentence."""
    try:
        f = open(path)
        try:
            given = json.loads(f.read())
        finally:
            f.close()
    except OSError:
        raise ValueError("cannot read the config file %s" % path)
    except ValueError:
        raise ValueError("the config file %s is not valid JSON" % path)
    return make_config(given)


def make_config(given):
    config = dict(DEFAULTS)
    config.update(given)
    for key in REQUIRED:
        if not config.get(key):
            raise ValueError("the config has no '%s'" % key)
    if not 512 <= config["batch_bytes"] <= HUB_MAX_MESSAGE:
        raise ValueError("'batch_bytes' must be between 512 and %d (the hub's limit)" % HUB_MAX_MESSAGE)
    if config["batch"] < 1:
        raise ValueError("'batch' must be at least 1")
    if config["buffer_bytes"] < 2 * SEGMENT:
        raise ValueError("'buffer_bytes' must be at least %d" % (2 * SEGMENT))
    return config


def topic(config, kind):
    return "sensing/v1/%s/%s" % (config["device_id"], kind)


def status(buf):
    """The retained status: `online`, then what was lost if anything, e.g. `online dropped=3 untimed=0`."""
    if not buf.dropped and not buf.untimed:
        return "online"
    return "online dropped=%d untimed=%d" % (buf.dropped, buf.untimed)


def message(records):
    """One MQTT message: a record alone, or several as the codec's JSON list."""
    if len(records) == 1:
        return records[0]
    return b"[" + b", ".join(records) + b"]"


def timed(batch, clock):
    """Give the untimed records of `batch` their time. Returns (records to send, how many of `batch` are
    dealt with, how many of those were dropped because their boot never got the time)."""
    out = []
    untimed = 0
    for i in range(len(batch)):
        payload = batch[i]
        if b'"t": null' not in payload:
            out.append(payload)
            continue
        rec = json.loads(payload)
        t = clock.time_of(rec["boot"], rec["ms"])
        if t is None:
            if rec["boot"] == clock.boot:
                return out, i, untimed  # this boot may still get the time: wait
            untimed += 1
            continue
        out.append(codec.encode_json(codec.record(rec["seq"], t, rec["v"])))
    return out, len(batch), untimed


def adopt_queue(state, buf, files):
    """Move readings from the queue file of earlier firmware into the buffer. A power cut part-way
    adopts them again at the next start: the same seqs, which the hub keeps once."""
    path = join(state, "queue.jsonl")
    try:
        f = files.open(path, "rb")
    except OSError:
        return
    try:
        lines = f.read().split(b"\n")
    finally:
        f.close()
    for line in lines:
        if line.strip():
            buf.append(line.strip())
    files.remove(path)


class Uplink:
    """The MQTT connection, made on demand, with a retained status: `online` (plus losses), `offline`."""

    def __init__(self, config, client_factory=None):
        self.config = config
        self.client_factory = client_factory or mqtt.MQTTClient
        self.client = None
        self.reported = None  # the status last published

    def connect(self, buf):
        c = self.config
        client = self.client_factory(c["device_id"], c["broker_host"], c["broker_port"],
                                     user=c["device_id"], password=c["secret"],
                                     keepalive=c["keepalive"], timeout=c["timeout"])
        client.set_last_will(topic(c, "status"), b"offline", retain=True, qos=1)
        client.connect()
        self.client = client
        self.report(buf)

    def report(self, buf):
        text = status(buf)
        if text != self.reported:
            self.client.publish(topic(self.config, "status"), text.encode(), qos=1, retain=True)
            self.reported = text

    def send(self, buf, clock):
        """Publish the buffered records, oldest first, a batch per message; a batch leaves the buffer only
        after its PUBACK. Returns how many were dropped for want of a time."""
        if self.client is None:
            self.connect(buf)
        c = self.config
        up = topic(c, "up")
        lost = 0
        while len(buf):
            # A list costs 2 bytes of brackets and 2 of ", " per record on top of the records.
            batch = buf.peek(c["batch"], c["batch_bytes"] - 2 - 2 * c["batch"])
            records, done, untimed = timed(batch, clock)
            if records:
                self.client.publish(up, message(records), qos=1)
            if not done:
                break  # the oldest reading waits for the time
            buf.ack(done, untimed)
            lost += untimed
        self.report(buf)
        return lost

    def close(self, clean=False):
        if self.client is None:
            return
        if clean:
            try:
                self.client.publish(topic(self.config, "status"), b"offline", qos=1, retain=True)
            except OSError:
                pass
            self.client.disconnect()
        else:
            self.client.close()
        self.client = None
        self.reported = None


def make_clock(config, state, files, now=board_time):
    ntp = None
    if config["ntp_host"]:
        def ntp():
            return sntp(config["ntp_host"], config["ntp_port"], config["timeout"])
    return Clock(next_boot(join(state, "boot"), files), join(state, "clock"), now=now, ntp=ntp, files=files)


def run(config, sensor=None, clock=None, sleep=time.sleep, log=print, client_factory=None, files=None):
    """Take config["cycles"] readings (forever when 0) every config["interval"] seconds and send them.
    Returns how many readings are still in the buffer."""
    state = config["state_dir"]
    files = files or Files()
    seqs = SeqCounter(join(state, "seq"), files=files)
    buf = Buffer(state, config["buffer_bytes"], SEGMENT, files)
    adopt_queue(state, buf, files)
    clock = clock or make_clock(config, state, files)
    sensor = sensor or EmulatedSensor(config["seed"])
    device = Device(config, buf, clock, Uplink(config, client_factory), log)
    cycles = config["cycles"]
    cycle = 0
    try:
        while not cycles or cycle < cycles:
            device.keep(seqs.next(), sensor.read())
            cycle += 1
            device.work()
            if not cycles or cycle < cycles:
                sleep(config["interval"])
        start = mqtt.ticks_ms()
        while len(buf) and mqtt.elapsed_ms(start) < config["drain_seconds"] * 1000:
            sleep(max(0.05, min(device.wait(), config["drain_seconds"] - mqtt.elapsed_ms(start) / 1000)))
            device.work()
    finally:
        device.uplink.close(clean=True)
        seqs.close()
    return len(buf)


class Device:
    """What run() does each cycle: keep the reading, get the time when due, send when due, log failures."""

    def __init__(self, config, buf, clock, uplink, log):
        self.config = config
        self.buf = buf
        self.clock = clock
        self.uplink = uplink
        self.log = log
        self.backoff = Backoff(config["backoff_initial"], config["backoff_max"], config["backoff_jitter"])
        self.ntp_backoff = Backoff(config["backoff_initial"], config["backoff_max"], config["backoff_jitter"])

    def keep(self, seq, values):
        t = self.clock.time()
        rec = codec.record(seq, t, values)
        if t is None:  # no time yet: where in which boot, so it can be placed once the time is known
            rec["boot"] = self.clock.boot
            rec["ms"] = self.clock.uptime_ms()
        dropped = self.buf.dropped
        self.buf.append(codec.encode_json(rec))
        if self.buf.dropped != dropped:
            self.log("sensing: the buffer is full: dropped the %d oldest reading(s) to keep the new ones"
                     % (self.buf.dropped - dropped))

    def wait(self):
        return self.backoff.wait()

    def work(self):
        if self.clock.sync_due(self.config["ntp_every"]) and self.ntp_backoff.due():
            self.sync()
        if self.backoff.due():
            self.send()

    def sync(self):
        try:
            self.clock.sync()
            self.ntp_backoff.reset()
        except OSError as e:
            delay = self.ntp_backoff.fail()
            self.log("sensing: cannot get the time (%s); readings wait for it, retrying in %s s"
                     % (e, seconds(delay)))

    def send(self):
        c = self.config
        try:
            lost = self.uplink.send(self.buf, self.clock)
            self.backoff.reset()
        except OSError as e:  # mqtt.MQTTError is an OSError
            self.uplink.close()
            delay = self.backoff.fail()
            self.log("sensing: cannot send to %s:%s (%s); %d reading(s) kept, retrying in %s s"
                     % (c["broker_host"], c["broker_port"], e, len(self.buf), seconds(delay)))
            return
        if lost:
            self.log("sensing: %d reading(s) not sent: taken before a restart, and the time never known"
                     % lost)


def seconds(x):
    """A wait for a log line: 2, 0.1, 37.5."""
    text = "%.1f" % x
    return text[:-2] if text.endswith(".0") else text


def _random():
    if random is None:
        return 0.5
    return random.getrandbits(16) / 65536


class Backoff:
    """Exponential backoff with jitter, capped: after each failure the base wait doubles, up to `limit`
    seconds, and the wait is the base less a random part of up to `jitter` of it, so a fleet of devices
    that lost the broker together does not come back in step. Uses tick differences, which stay right
    when the board's millisecond counter wraps."""

    def __init__(self, initial, limit, jitter=0.0, rand=_random):
        self.initial = initial
        self.limit = limit
        self.jitter = jitter
        self.rand = rand
        self.delay = initial
        self.failed_at = None
        self.waiting = 0

    def due(self):
        return self.failed_at is None or mqtt.elapsed_ms(self.failed_at) >= self.waiting * 1000

    def wait(self):
        if self.failed_at is None:
            return 0.0
        return max(0.0, self.waiting - mqtt.elapsed_ms(self.failed_at) / 1000)

    def fail(self):
        self.failed_at = mqtt.ticks_ms()
        self.waiting = self.delay * (1 - self.jitter * self.rand())
        self.delay = min(self.delay * 2, self.limit)
        return self.waiting

    def reset(self):
        self.delay = self.initial
        self.failed_at = None
