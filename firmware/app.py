# The firmware's main loop: read the sensors, number the reading, keep it, send it, forget it once
# acknowledged. MicroPython common subset. The hardware (machine, onewire), sensors, clock, sleep, watchdog
# and uplink client are injectable; run() touches nothing until it is called (start.py makes its objects).
#
# A reading becomes a record {"seq", "t", "v"} (seq.py: never reused, even across a power cut), goes into
# the flash buffer (buffer.py) before any send, and leaves it only after the broker's PUBACK (MQTT), in
# batches of up to `batch` readings per message, oldest first, or after the modem's "sent" (LoRaWAN, one
# compact reading per uplink, lora_uplink.py). A resent record is the same bytes, so it keeps its seq; the
# hub drops a repeat. A reading taken before the time is known (clock.py) is kept with its boot id and
# uptime instead of "t", and gets its time just before it is sent.
#
# Each cycle: feed the watchdog, read every sensor (faults go into the status, the reading keeps the rest),
# send when the backoff allows, apply settings that arrived (config topic, downlink), report the status,
# then wait (awake with the LED playing, light sleep, or deep sleep) for the next reading.
#
# Memory (docs/firmware.md, Memory): the loop collects its garbage at fixed points (cycles() yields at each),
# so a peak is the live heap and what one step allocates; code used at start or now and then is loaded for it
# and let go (buffer.load/release: start.py, config.py, ntp.py, mqtt_connect.py); a batch is streamed from
# flash into the MQTT message (batch()), never whole in the heap.

import gc
import json
import time

try:
    import random
except ImportError:  # every board build has it; a stripped-down port might not
    random = None

try:
    from . import mqtt, power
    from .buffer import join, load, release
    from .clock import Clock, next_boot
    from .encode import encode_json, record
    from .status import Led, Status, goodbye
except ImportError:  # copied flat onto a board
    import mqtt
    import power
    from buffer import join, load, release
    from clock import Clock, next_boot
    from encode import encode_json, record
    from status import Led, Status, goodbye

__all__ = ("make_config", "load_config", "run", "cycles")

# The settings module, config.py (its defaults and checks), is imported when needed (at start, and when a
# change arrives) and let go afterwards with release(), so the loop runs without it in the heap.


def make_config(given):
    """The defaults, overridden by `given`, checked. Raises ConfigError (a ValueError) with one sentence."""
    checks = load("config")
    config = checks.make_config(given)
    release(checks)  # not when it raised: the caller catches the ConfigError of this very module
    return config


def load_config(path):
    """Read a JSON config file, fill in the defaults and check it. Raises ConfigError (a ValueError) with
    one sentence."""
    checks = load("config")
    config = checks.load(path)
    release(checks)
    return config


def topic(config, kind):
    return "sensing/v1/%s/%s" % (config["device_id"], kind)


def batch(buf, clock, most, budget, write=None, sent=0):
    """One message of the buffered records, oldest first, read from flash one at a time (buf.scan), never
    all in the heap. Without `write`: (records to send, the message's size, records dealt with, of which
    dropped because their boot never got the time, the record when the message is one record as it is on
    flash: a memoryview of buf.scratch, else None), at most `most` records and `budget` bytes (but always
    one). With `write`, for the `most` records dealt with and `sent` to send: writes the message (one record,
    or several as the codec's JSON list) through write(); returns its size.

    An untimed record was written by Device.keep as {"seq": .., "t": null, "v": {..}, "boot": <n>, "ms": <n>}
    (encode_json's key order). It gets its time in place of null and loses its place in the boot: the bytes
    encode_json gives the timed record, without decoding and encoding it again. A record of this boot that
    has no time yet waits, and the records behind it with it."""
    count = size = done = untimed = 0
    only = None
    records = buf.scan(most, check=write is None)
    try:
        for record in records:
            only = None  # the scratch holds another record now
            data = buf.scratch
            n = len(record)
            at = data.find(b'"t": null', 0, n)
            length = n
            if at >= 0:
                place = data.rfind(b', "boot": ', 0, n)
                ms = data.rfind(b', "ms": ', 0, n)
                boot = int(data[place + 10:ms])
                t = clock.time_of(boot, int(data[ms + 8:n - 1]))
                if t is None:
                    if boot == clock.boot:
                        break  # this boot may still get the time: wait
                    done += 1
                    untimed += 1
                    continue
                t = b"%d" % t
                length = place - 4 + len(t) + 1
            if write is None and count and size + length + 2 * count + 2 > budget:
                break
            if write is not None:
                if sent > 1:
                    write(b", " if count else b"[")
                if at < 0:
                    write(record)
                else:
                    write(record[:at + 5])
                    write(t)
                    write(record[at + 9:place])
                    write(b"}")
            only = record if at < 0 and not count else None
            count += 1
            done += 1
            size += length
    finally:
        records.close()  # the file, when the loop stops early
    if count > 1:
        size += 2 * count  # the brackets and the separators of a list
    if write is None:
        return count, size, done, untimed, only if count == 1 else None
    if sent > 1:
        write(b"]")
    return size


class Uplink:
    """The MQTT connection, made on demand: the retained status (its last will says offline), readings in
    batches, and settings arriving on the retained config topic."""

    def __init__(self, config, status, client_factory=None):
        self.config = config
        self.status = status
        self.client_factory = client_factory or mqtt.MQTTClient
        self.client = None
        self.reported = None  # what the status last published was made of (see report)
        self.inbox = []       # settings changes that arrived: dicts, or a ValueError for one we cannot read
        self.up = topic(config, "up")
        self.config_topic = topic(config, "config")

    def connect(self):
        c = self.config
        client = self.client_factory(c["device_id"], c["broker_host"], c["broker_port"],
                                     user=c["device_id"], password=c["secret"], keepalive=c["keepalive"],
                                     timeout=c["timeout"], ca=c["broker_ca"] if c["broker_tls"] else None)
        client.set_last_will(topic(c, "status"), goodbye(), retain=True, qos=1)
        client.on_message = self._on_message
        client.connect()
        self.client = client
        self.report()
        client.subscribe(self.config_topic, qos=1)  # the retained settings arrive right after

    def _on_message(self, name, payload):
        if name != self.config_topic:
            return
        try:
            changes = json.loads(payload)
        except ValueError:  # the loop takes a ValueError in the inbox as a change it cannot read
            changes = ValueError("the settings on the config topic are not valid JSON")
        self.inbox.append(changes)

    def report(self, status=None):
        """Publish the status when it changed. What Status.encode() writes is compared first, so the
        message is encoded only when it is sent."""
        if self.client is None:
            return
        s = self.status
        buf = s.buf
        made_of = (s.state, s.message, len(s.boot_faults), s.faults,
                   s.dropped if buf is None else buf.dropped, s.untimed if buf is None else buf.untimed)
        if made_of != self.reported:
            self.client.publish(topic(self.config, "status"), s.encode(), qos=1, retain=True)
            self.reported = made_of

    def send(self, buf, clock):
        """Publish the oldest batch of buffered records, streamed from flash: it leaves the buffer only after
        its PUBACK. The loop calls again, after a collection, while more wait (Device.send). Returns how
        many were dropped for want of a time, or -1 when it connected and sent nothing yet (the connection's
        garbage is collected before the first batch)."""
        if self.client is None:
            self.connect()
            if len(buf):
                return -1  # connected: the batch goes after a collection (Device.send)
        c = self.config
        count, size, done, untimed, only = batch(buf, clock, c["batch"], c["batch_bytes"])
        if only is not None:  # one record as it is on flash: sent from the buffer's scratch
            self.client.publish(self.up, only, qos=1)
        elif count:
            def write(out):
                if batch(buf, clock, done, 0, out, count) != size:  # the same records gave another size
                    raise OSError("a batch changed while it was sent")
            self.client.publish(self.up, write, qos=1, size=size)
        if done:  # none: the oldest reading waits for the time
            buf.ack(done, untimed)
        self.report()
        return untimed

    def settings(self):
        """The settings changes that arrived since the last call."""
        if self.client is not None:
            while self.client.check_msg() is not None:
                pass
        out = self.inbox
        self.inbox = []
        return out

    def close(self, clean=False, state="offline"):
        if self.client is None:
            return
        if clean:
            try:
                self.client.publish(topic(self.config, "status"), goodbye(state), qos=1, retain=True)
            except OSError:
                pass
            self.client.disconnect()
        else:
            self.client.close()
        self.client = None
        self.reported = None


def make_clock(config, state, files, now=None, rtc=None):
    """The clock of this start: `rtc` is the board's machine.RTC, set when the time server answers and read
    as the board's clock (None: time.time())."""
    ntp = None
    if config["ntp_host"]:
        def ntp():
            protocol = load("ntp")  # used every few hours: not kept in the heap in between
            try:
                return protocol.sntp(config["ntp_host"], config["ntp_port"], config["timeout"])
            finally:
                release(protocol)
    return Clock(next_boot(join(state, "boot"), files), join(state, "clock"), now=now, ntp=ntp, files=files,
                 rtc=rtc)


def run(config, sensor=None, clock=None, sleep=time.sleep, log=print, client_factory=None, files=None,
        hardware=None, config_file=None, wdt=None):
    """Take config["cycles"] readings (forever when 0) every config["interval"] seconds and send them.
    `config_file` is where settings changes are kept. Returns how many readings are still in the buffer."""
    left = 0
    for left in cycles(config, sensor, clock, sleep, log, client_factory, files, hardware, config_file, wdt):
        pass
    return left


def cycles(config, sensor=None, clock=None, sleep=time.sleep, log=print, client_factory=None, files=None,
           hardware=None, config_file=None, wdt=None):
    """run(), one step at a time: yields at each point where it collected the garbage (-1 in the start, then
    the readings in the buffer): before each cycle, between its reading and its sending, after connecting
    and between the batches of a backlog, so a step's peak
    is the live heap and what one step allocates. A host that collects only between calls (MicroPython's
    webassembly port, in the memory bench) drives it with next()."""
    start = load("start")  # the start's work (start.py, board.py), let go before the first cycle
    part = start.board_part(config, sensor, hardware, wdt)
    sensor = hardware = wdt = None  # nothing of board.py's held in this frame
    gc.collect()
    yield -1  # board.py is gone
    for got in start.sensors_part(config, part):  # a bus at a time
        if got is not None:
            part = got
        gc.collect()
        yield -1  # the last: the chips are found, and finding them (sensors/registry.py) is gone
    part = start.ranges_part(part)
    gc.collect()
    yield -1  # the quantity registry is gone
    device, seqs, sensors = start.device(config, part, clock, sleep, log, client_factory, files, config_file)
    release(start)
    start = part = clock = files = None
    buf = device.buf
    pw = device.power
    count = config["cycles"]
    cycle = 0
    try:
        while not count or cycle < count:
            gc.collect()
            yield len(buf)
            pw.feed()
            for _ in device.measure(seqs, sensors):  # between two chips' drivers
                gc.collect()
                yield len(buf)
            cycle += 1
            gc.collect()  # the reading is on flash: its garbage goes before the sending
            yield len(buf)
            while device.work():  # a batch went and more wait: collect its garbage before the next
                gc.collect()
                yield len(buf)
                pw.feed()
            if not count or cycle < count:
                device.rest(seqs)
        start = mqtt.ticks_ms()
        while len(buf) and mqtt.elapsed_ms(start) < config["drain_seconds"] * 1000:
            pw.rest(max(0.05, min(device.wait(), config["drain_seconds"] - mqtt.elapsed_ms(start) / 1000)))
            while device.work():
                gc.collect()
                yield len(buf)
                pw.feed()
    finally:
        if device.uplink is not None:
            device.uplink.close(clean=True)
        seqs.close()
    yield len(buf)


class Device:
    """What run() does each cycle: read the sensors, keep the reading, get the time when due, send when
    due, apply settings that arrived, report the status, and log failures."""

    def __init__(self, config, buf, clock, uplink, log, status=None, led=None, pw=None, config_file=None,
                 files=None):
        self.config = config
        self.buf = buf
        self.clock = clock
        self.uplink = uplink
        self.log = log
        self.status = status or Status(buf)
        self.led = led or Led()
        self.power = pw or power.Power(config["sleep"])
        self.config_file = config_file
        self.files = files
        self.faults_seen = []  # the sensors last logged as failing, so a lasting fault is logged once
        self.backoff = Backoff(config["backoff_initial"], config["backoff_max"], config["backoff_jitter"])
        self.ntp_backoff = Backoff(config["backoff_initial"], config["backoff_max"], config["backoff_jitter"])

    def measure(self, seqs, sensors):
        """Read the sensors and keep the reading. A generator: it yields between two drivers
        (reading.Sensors.steps), where the caller collects the garbage."""
        steps = getattr(sensors, "steps", None)
        if steps is None:
            got = sensors.read()
        else:
            for got in steps():
                if got is None:
                    yield
        values, faults = got if isinstance(got, tuple) else (got, [])
        self.status.faults = faults
        self.note_faults(faults)
        if values:  # every sensor failed: no reading this cycle, and no seq spent on it
            self.keep(seqs.next(), values)

    def note_faults(self, faults):
        names = [f["sensor"] + " " + f["fault"] for f in faults]
        for f in faults:
            if f["sensor"] + " " + f["fault"] not in self.faults_seen:
                self.log("sensing: sensor fault: %s" % f["message"])
        self.faults_seen = names

    def keep(self, seq, values):
        t = self.clock.time()
        rec = record(seq, t, values)
        if t is None:  # no time yet: where in which boot, so it can be placed once the time is known
            rec["boot"] = self.clock.boot
            rec["ms"] = self.clock.uptime_ms()
        dropped = self.buf.dropped
        self.buf.append(encode_json(rec))
        if self.buf.dropped != dropped:
            self.log("sensing: the buffer is full: dropped the %d oldest reading(s) to keep the new ones"
                     % (self.buf.dropped - dropped))

    def wait(self):
        return self.backoff.wait()

    def work(self):
        """Sync the clock when due, send when due, then apply the settings that arrived and report the
        status. True when a batch of readings went and more wait: the caller collects the garbage and calls
        again for the next batch (the rest is done by the last call)."""
        if self.clock.sync_due(self.config["ntp_every"]) and self.ntp_backoff.due():
            self.sync()
        if self.backoff.due() and self.send():
            return True
        try:
            for changes in self.uplink.settings():
                self.apply(changes)
            self.uplink.report(self.status)
        except OSError as e:
            self.uplink.close()
            self.status.network = False
            self.backoff.fail()
            self.log("sensing: lost the connection (%s)" % e)
        self.led.show(self.status.led_state())
        self.power.feed()
        return False

    def sync(self):
        try:
            self.clock.sync()
            self.ntp_backoff.reset()
        except OSError as e:
            delay = self.ntp_backoff.fail()
            self.log("sensing: cannot get the time (%s); readings wait for it, retrying in %s s"
                     % (e, seconds(delay)))

    def send(self):
        """Send a batch of readings (all of them over LoRaWAN). True when one went and more wait."""
        c = self.config
        held = len(self.buf)
        if held:
            self.led.show("sending")
        try:
            lost = self.uplink.send(self.buf, self.clock)
            self.backoff.reset()
            self.status.network = True
            if lost < 0:
                return True  # connected; the readings go after a collection
        except OSError as e:  # mqtt.MQTTError and lora_uplink.UplinkError are OSErrors
            self.uplink.close()
            self.status.network = False
            delay = self.backoff.fail()
            where = "the LoRaWAN network" if c["transport"] == "lorawan" else "%s:%s" % (
                c["broker_host"], c["broker_port"])
            self.log("sensing: cannot send to %s (%s); %d reading(s) kept, retrying in %s s"
                     % (where, e, len(self.buf), seconds(delay)))
            return False
        if lost:
            self.log("sensing: %d reading(s) not sent: taken before a restart, and the time never known"
                     % lost)
        return 0 < len(self.buf) < held

    def apply(self, changes):
        """Check a settings change against the whole config, keep it in the config file, use it (the work
        is config.apply's, loaded for it); a change already in use (the retained settings, at each
        connection) costs nothing."""
        if isinstance(changes, dict) and changes:
            for k in changes:
                if self.config.get(k) != changes[k]:
                    break
            else:
                return
        checks = load("config")
        try:
            checks.apply(self, changes)
        finally:
            release(checks)

    def rest(self, seqs):
        """Wait for the next reading, the configured way."""
        interval = self.config["interval"]
        if self.config["sleep"] != "deep":
            return self.power.rest(interval)
        self.uplink.close(clean=True, state="asleep")
        self.power.deep_sleep(interval, {"seq": seqs.value, "limit": seqs.limit})


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
