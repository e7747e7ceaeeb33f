# The firmware's main loop: read the sensor, number the reading, keep it, send it, forget it once acknowledged.
# MicroPython common subset. The sensor, clock, sleep and MQTT client are injectable; run() touches nothing
# until it is called.
#
# A reading becomes a record {"seq", "t", "v"} with a seq reserved on flash before use (so a seq is never
# reused, even across a crash), is appended to a file-backed queue, and leaves the queue only after the
# broker's PUBACK. A resent record is the same bytes, so it keeps its seq; the hub drops a repeat.

import json
import os
import time

try:
    from . import codec, mqtt
    from .sensors.emulated import EmulatedSensor
except ImportError:  # copied flat onto a board
    import codec
    import mqtt
    from sensors.emulated import EmulatedSensor

DEFAULTS = {
    "broker_host": "127.0.0.1",
    "broker_port": 1883,
    "interval": 60,          # seconds between readings
    "cycles": 0,             # readings to take before returning; 0 runs forever
    "drain_seconds": 0,      # after the last cycle, keep retrying the queue this long
    "state_dir": "/",        # where the seq counter and the queue live
    "seed": 1,               # the emulated sensor's seed
    "keepalive": 60,
    "timeout": 5,            # seconds to wait for the broker (CONNACK, PUBACK)
    "backoff_initial": 1,    # seconds before the first retry after a failure, doubled each failure
    "backoff_max": 300,
}
REQUIRED = ("device_id", "secret")
EPOCH_2000 = 946684800


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
    return config


def topic(config, kind):
    return "sensing/v1/%s/%s" % (config["device_id"], kind)


def epoch_now():
    # Ports whose epoch is 2000 (ESP32, older rp2) report 2000-based seconds; the wire wants Unix seconds.
    t = int(time.time())
    if time.gmtime(0)[0] == 2000:
        t += EPOCH_2000
    return t


def _join(directory, name):
    return directory.rstrip("/") + "/" + name if directory not in ("", ".") else name


def _replace(tmp, path):
    # rename over an existing file fails on some filesystems (FAT): remove it first then.
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)


def _write(path, text):
    tmp = path + ".tmp"
    f = open(tmp, "w")
    f.write(text)
    f.close()
    _replace(tmp, path)


class SeqCounter:
    """The next sequence number, kept in a small file. next() writes the one after before returning."""

    def __init__(self, path):
        self.path = path
        try:
            f = open(path)
            self.value = int(f.read().strip())
            f.close()
        except (OSError, ValueError):
            self.value = 0

    def next(self):
        seq = self.value
        _write(self.path, "%d\n" % (seq + 1))
        self.value = seq + 1
        return seq


class Queue:
    """Encoded records waiting for their PUBACK, one JSON line each, oldest first."""

    def __init__(self, path):
        self.path = path
        self.items = []
        try:
            f = open(path)
            lines = f.read().split("\n")
            f.close()
        except OSError:
            lines = []
        for line in lines:
            if line.strip():
                self.items.append(line.encode())

    def __len__(self):
        return len(self.items)

    def append(self, payload):
        f = open(self.path, "a")
        f.write(payload.decode() + "\n")
        f.close()
        self.items.append(payload)

    def drop_first(self):
        self.items.pop(0)
        _write(self.path, "".join([p.decode() + "\n" for p in self.items]))


class Uplink:
    """The MQTT connection, made on demand, with an `online`/`offline` retained status."""

    def __init__(self, config, client_factory=None):
        self.config = config
        self.client_factory = client_factory or mqtt.MQTTClient
        self.client = None

    def connect(self):
        c = self.config
        client = self.client_factory(c["device_id"], c["broker_host"], c["broker_port"],
                                     user=c["device_id"], password=c["secret"],
                                     keepalive=c["keepalive"], timeout=c["timeout"])
        client.set_last_will(topic(c, "status"), b"offline", retain=True, qos=1)
        client.connect()
        self.client = client
        client.publish(topic(c, "status"), b"online", qos=1, retain=True)

    def send(self, queue):
        """Publish the queued records in order; each leaves the queue only after its PUBACK."""
        if self.client is None:
            self.connect()
        up = topic(self.config, "up")
        while len(queue):
            self.client.publish(up, queue.items[0], qos=1)
            queue.drop_first()

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


def run(config, sensor=None, clock=epoch_now, sleep=time.sleep, log=print, client_factory=None):
    """Take config["cycles"] readings (forever when 0) every config["interval"] seconds and send them."""
    state = config["state_dir"]
    seqs = SeqCounter(_join(state, "seq"))
    queue = Queue(_join(state, "queue.jsonl"))
    sensor = sensor or EmulatedSensor(config["seed"])
    uplink = Uplink(config, client_factory)
    backoff = Backoff(config["backoff_initial"], config["backoff_max"])
    cycles = config["cycles"]
    cycle = 0
    try:
        while not cycles or cycle < cycles:
            queue.append(codec.encode_json(codec.record(seqs.next(), clock(), sensor.read())))
            cycle += 1
            if backoff.due():
                _try_send(uplink, queue, backoff, config, log)
            if not cycles or cycle < cycles:
                sleep(config["interval"])
        start = mqtt.ticks_ms()
        while len(queue) and mqtt.elapsed_ms(start) < config["drain_seconds"] * 1000:
            sleep(max(0.05, min(backoff.wait(), config["drain_seconds"] - mqtt.elapsed_ms(start) / 1000)))
            if backoff.due():
                _try_send(uplink, queue, backoff, config, log)
    finally:
        uplink.close(clean=True)
    return len(queue)


def _try_send(uplink, queue, backoff, config, log):
    try:
        uplink.send(queue)
        backoff.reset()
    except OSError as e:  # mqtt.MQTTError is an OSError
        uplink.close()
        delay = backoff.fail()
        log("sensing: cannot send to %s:%s (%s); %d reading(s) kept, retrying in %s s"
            % (config["broker_host"], config["broker_port"], e, len(queue), delay))


class Backoff:
    """Exponential backoff, capped: after each failure wait twice as long, up to `limit` seconds.
    Uses tick differences, which stay right when the board's millisecond counter wraps."""

    def __init__(self, initial, limit):
        self.initial = initial
        self.limit = limit
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
        self.waiting = self.delay
        self.delay = min(self.delay * 2, self.limit)
        return self.waiting

    def reset(self):
        self.delay = self.initial
        self.failed_at = None
