# The firmware's main loop: read the sensors, number the reading, keep it, send it, forget it once
# acknowledged. MicroPython common subset. The hardware (machine, onewire), sensors, clock, sleep, watchdog
# and uplink client are injectable; run() touches nothing until it is called.
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

import json
import sys
import time

try:
    import random
except ImportError:  # every board build has it; a stripped-down port might not
    random = None

try:
    from . import board, mqtt, power
    from .buffer import SEGMENT, Buffer, Files, join
    from .clock import Clock, board_rtc, next_boot, sntp
    from .encode import encode_json, record
    from .seq import SeqCounter
    from .status import Led, Status, goodbye
except ImportError:  # copied flat onto a board
    import board
    import mqtt
    import power
    from buffer import SEGMENT, Buffer, Files, join
    from clock import Clock, board_rtc, next_boot, sntp
    from encode import encode_json, record
    from seq import SeqCounter
    from status import Led, Status, goodbye

__all__ = ("make_config", "load_config", "run")


def settings_module():
    """The settings module, config.py: its defaults and checks. Imported when needed (at start, and when a
    change arrives) and let go afterwards with release(), so the loop runs without it in the heap."""
    try:
        from . import config
    except ImportError:  # copied flat onto a board
        import config
    return config


def release(module):
    """Under MicroPython, forget an imported module, so the collector takes back its heap once nothing else
    holds it; the next import loads it again. CPython keeps its modules (its tests hold on to them)."""
    if sys.implementation.name != "micropython":
        return
    name = module.__name__
    sys.modules.pop(name, None)
    dot = name.rfind(".")
    if dot > 0:  # the package holds its submodule too
        try:
            delattr(sys.modules[name[:dot]], name[dot + 1:])
        except (KeyError, AttributeError):
            pass


def make_config(given):
    """The defaults, overridden by `given`, checked. Raises ConfigError (a ValueError) with one sentence."""
    checks = settings_module()
    config = checks.make_config(given)
    release(checks)  # not when it raised: the caller catches the ConfigError of this very module
    return config


def load_config(path):
    """Read a JSON config file, fill in the defaults and check it. Raises ConfigError (a ValueError) with
    one sentence."""
    checks = settings_module()
    config = checks.load(path)
    release(checks)
    return config


def topic(config, kind):
    return "sensing/v1/%s/%s" % (config["device_id"], kind)


def message(records):
    """One MQTT message: a record alone, or several as the codec's JSON list, given as chunks the MQTT client
    sends one after another (joining them would need the whole message twice in the heap)."""
    if len(records) == 1:
        return records[0]
    parts = [b"["]
    for r in records:
        if len(parts) > 1:
            parts.append(b", ")
        parts.append(r)
    parts.append(b"]")
    return parts


def timed(batch, clock):
    """Give the untimed records of `batch` their time. Returns (records to send, how many of `batch` are
    dealt with, how many of those were dropped because their boot never got the time)."""
    out = []
    untimed = 0
    for i in range(len(batch)):
        payload = batch[i]
        at = payload.find(b'"t": null')
        if at < 0:
            out.append(payload)
            continue
        # Device.keep wrote it as {"seq": .., "t": null, "v": {..}, "boot": <n>, "ms": <n>} (encode_json's
        # key order). The time goes in place of null and the place in the boot is cut off: the bytes
        # encode_json gives the timed record, without decoding the record and encoding it again.
        place = payload.rfind(b', "boot": ')
        ms = payload.rfind(b', "ms": ')
        boot = int(payload[place + 10:ms])
        t = clock.time_of(boot, int(payload[ms + 8:-1]))
        if t is None:
            if boot == clock.boot:
                return out, i, untimed  # this boot may still get the time: wait
            untimed += 1
            continue
        out.append(payload[:at + 5] + b"%d" % t + payload[at + 9:place] + b"}")
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
    """The MQTT connection, made on demand: the retained status (its last will says offline), readings in
    batches, and settings arriving on the retained config topic."""

    def __init__(self, config, status, client_factory=None):
        self.config = config
        self.status = status
        self.client_factory = client_factory or mqtt.MQTTClient
        self.client = None
        self.reported = None  # the status last published
        self.inbox = []       # settings changes that arrived: dicts, or a ValueError for one we cannot read

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
        client.subscribe(topic(c, "config"), qos=1)  # the retained settings arrive right after

    def _on_message(self, name, payload):
        if name != topic(self.config, "config"):
            return
        try:
            changes = json.loads(payload)
        except ValueError:  # the loop takes a ValueError in the inbox as a change it cannot read
            changes = ValueError("the settings on the config topic are not valid JSON")
        self.inbox.append(changes)

    def report(self, status=None):
        if self.client is None:
            return
        text = self.status.encode()
        if text != self.reported:
            self.client.publish(topic(self.config, "status"), text, qos=1, retain=True)
            self.reported = text

    def send(self, buf, clock):
        """Publish the buffered records, oldest first, a batch per message; a batch leaves the buffer only
        after its PUBACK. Returns how many were dropped for want of a time."""
        if self.client is None:
            self.connect()
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
        self.report()
        return lost

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
            return sntp(config["ntp_host"], config["ntp_port"], config["timeout"])
    return Clock(next_boot(join(state, "boot"), files), join(state, "clock"), now=now, ntp=ntp, files=files,
                 rtc=rtc)


def make_uplink(config, status, hardware, board_map, pw, log, client_factory=None):
    if config["transport"] != "lorawan":
        return Uplink(config, status, client_factory)
    try:
        from . import lorawan
        from .lora_uplink import FedClock, LoraUplink
    except ImportError:
        import lorawan
        from lora_uplink import FedClock, LoraUplink
    clock = FedClock(hardware.modem_clock or lorawan.modem.Clock(), pw.feed)
    radio = lorawan.make(config["lora_modem"], board.modem_uart(config, hardware, board_map), clock)
    return LoraUplink(config, radio, log)


def run(config, sensor=None, clock=None, sleep=time.sleep, log=print, client_factory=None, files=None,
        hardware=None, config_file=None, wdt=None):
    """Take config["cycles"] readings (forever when 0) every config["interval"] seconds and send them.
    `config_file` is where settings changes are kept. Returns how many readings are still in the buffer."""
    state = config["state_dir"]
    files = files or Files()
    hardware = hardware or board.on_this_port()
    status = Status()
    board_map = {}
    if hardware.has_buses():
        try:
            board_map = board.load_map(hardware, config["board"])
        except ValueError as e:
            status.boot_faults.append({"sensor": "board", "fault": "absent", "message": str(e)})
    led = Led(board.led_pin(hardware, board_map), config["led"])
    wdt = wdt or power.watchdog(hardware.machine, config["watchdog_ms"])
    pw = power.Power(config["sleep"], hardware.machine, led, wdt, config["watchdog_ms"], sleep,
                     power.state_store(hardware.machine, state, files))
    woke = pw.woke()
    seqs = SeqCounter(join(state, "seq"), files=files)
    if woke.get("limit") == seqs.limit and 0 <= woke.get("seq", -1) <= seqs.limit:
        seqs.value = woke["seq"]  # back from deep sleep: carry on without a gap or a flash write
    buf = Buffer(state, config["buffer_bytes"], SEGMENT, files)
    status.buf = buf
    adopt_queue(state, buf, files)
    clock = clock or make_clock(config, state, files, rtc=board_rtc(hardware.machine))
    sensors = sensor or board.find_sensors(config, hardware, board_map, status.boot_faults)
    pw.feed()
    device = Device(config, buf, clock, None, log, status, led, pw, config_file, files)
    device.note_faults(status.boot_faults)
    cycles = config["cycles"]
    cycle = 0
    try:
        device.uplink = make_uplink(config, status, hardware, board_map, pw, log, client_factory)
        while not cycles or cycle < cycles:
            pw.feed()
            device.measure(seqs, sensors)
            cycle += 1
            device.work()
            if not cycles or cycle < cycles:
                device.rest(seqs)
        start = mqtt.ticks_ms()
        while len(buf) and mqtt.elapsed_ms(start) < config["drain_seconds"] * 1000:
            pw.rest(max(0.05, min(device.wait(), config["drain_seconds"] - mqtt.elapsed_ms(start) / 1000)))
            device.work()
    finally:
        if device.uplink is not None:
            device.uplink.close(clean=True)
        seqs.close()
    return len(buf)


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
        got = sensors.read()
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
        if self.clock.sync_due(self.config["ntp_every"]) and self.ntp_backoff.due():
            self.sync()
        if self.backoff.due():
            self.send()
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
        if len(self.buf):
            self.led.show("sending")
        try:
            lost = self.uplink.send(self.buf, self.clock)
            self.backoff.reset()
            self.status.network = True
        except OSError as e:  # mqtt.MQTTError and lora_uplink.UplinkError are OSErrors
            self.uplink.close()
            self.status.network = False
            delay = self.backoff.fail()
            where = "the LoRaWAN network" if c["transport"] == "lorawan" else "%s:%s" % (
                c["broker_host"], c["broker_port"])
            self.log("sensing: cannot send to %s (%s); %d reading(s) kept, retrying in %s s"
                     % (where, e, len(self.buf), seconds(delay)))
            return
        if lost:
            self.log("sensing: %d reading(s) not sent: taken before a restart, and the time never known"
                     % lost)

    def apply(self, changes):
        """Check a settings change against the whole config, keep it in the config file, use it."""
        if isinstance(changes, ValueError):  # a ConfigError, or the config topic's unreadable JSON
            return self.refuse(str(changes))
        if isinstance(changes, dict) and changes and [k for k in changes if self.config.get(k) != changes[k]] == []:
            return  # the retained settings again, already in use
        checks = settings_module()
        try:
            given = checks.read(self.config_file, self.files) if self.config_file else dict(self.config)
            given = checks.update(given, changes)
            if self.config_file:
                checks.save(self.config_file, given, self.files)
        except checks.ConfigError as e:
            return self.refuse(str(e))
        finally:
            release(checks)
        self.config.update(changes)
        self.power.mode = self.config["sleep"]
        self.led.enable(self.config["led"])
        self.status.message = ""
        self.log("sensing: settings changed: %s" % ", ".join(
            ["%s %s" % (k, json.dumps(changes[k])) for k in sorted(changes)]))

    def refuse(self, why):
        self.status.message = "config refused: %s" % why
        self.log("sensing: %s" % self.status.message)

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
