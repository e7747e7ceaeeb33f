# Sending the buffer over LoRaWAN: one reading per uplink in the codec's compact form, each removed from
# the buffer only once the modem reports the send done (for a confirmed uplink: acknowledged). Settings
# downlinks on config.CONFIG_PORT come back to the loop. The device's status goes on lorawan.STATUS_PORT
# (lora_status.py) when it changes, and again after a long while. MicroPython common subset.

import json

try:
    from . import encode, lorawan
    from .buffer import Files, join, read_atomic, write_atomic
    from .config import CONFIG_PORT, ConfigError, decode_downlink
    from .lora_status import encode_status
except ImportError:  # copied flat onto a board
    import encode
    import lorawan
    from buffer import Files, join, read_atomic, write_atomic
    from config import CONFIG_PORT, ConfigError, decode_downlink
    from lora_status import encode_status

# Airtime is scarce (a duty cycle of 1 % in Europe, TTN's fair use of 30 s a day): a status that changed goes at
# most once every STATUS_GAP_MS (a fault that comes and goes), an unchanged one again after STATUS_EVERY_MS.
STATUS_GAP_MS = 15 * 60 * 1000
STATUS_EVERY_MS = 12 * 3600 * 1000
STATUS_FILE = "lora_status"  # in state_dir: what the last status uplink said, so a restart does not repeat it


class UplinkError(OSError):
    """A send that did not happen and may work later (not joined, busy, duty cycle, no ack, timeout)."""


class FedClock:
    """The modem's clock, feeding the watchdog while the driver waits for a join or a send (up to 45 s)."""

    def __init__(self, clock, feed):
        self.clock = clock
        self.feed = feed

    def ticks_ms(self):
        return self.clock.ticks_ms()

    def ticks_diff(self, a, b):
        return self.clock.ticks_diff(a, b)

    def sleep_ms(self, ms):
        self.clock.sleep_ms(ms)
        self.feed()


class LoraUplink:
    def __init__(self, config, radio, log, files=None):
        self.config = config
        self.radio = radio
        self.log = log
        self.files = files or Files()
        self.configured = False
        self.inbox = []  # settings changes from downlinks: dicts, or ConfigError for one we cannot read
        self.clock = None  # the loop's clock, once send() has run: the start's number
        self.battery = None  # the battery voltage of the last reading sent that had one
        self.tried = False  # the readings had their try since the last status uplink
        self.said = None  # what the last status uplink said, without its counts (from flash at first)
        self.said_at = None  # when it went (the modem's ms), if in this run
        self.started = None  # the modem's ms at the first status check of this run

    def send(self, buf, clock):
        """Send the buffered readings, oldest first, until the buffer is empty or the modem cannot send.
        Raises UplinkError; the reading being sent stays in the buffer."""
        c = self.config
        self.clock = clock
        self.tried = True
        try:
            if not self.configured:
                self.radio.configure(c["lora_dev_eui"], c["lora_app_eui"], c["lora_app_key"],
                                     region=c["lora_region"], data_rate=c["lora_data_rate"])
                self.configured = True
            if not self.radio.joined:
                self.radio.join()
            while len(buf):
                rec = json.loads(buf.peek(1, 0)[0])
                self.battery = rec["v"].get("battery_voltage", self.battery)
                try:
                    payload = encode.encode_compact(rec["seq"], rec["v"])
                except encode.CodecError as e:  # it can never be sent: let the readings behind it go
                    self.log("sensing: reading %d cannot be sent over LoRaWAN (%s); skipped" % (rec["seq"], e))
                    buf.ack(1)
                    continue
                downlink = self.radio.send(c["lora_port"], payload, c["lora_confirmed"])
                buf.ack(1)
                if downlink is not None:
                    self.received(downlink)
        except lorawan.ModemError as e:
            if e.kind == "timeout":
                self.configured = False  # the modem may have restarted: configure it again
            raise UplinkError(str(e))
        except ValueError as e:  # a key or region the modem refused at configure
            raise UplinkError(str(e))
        return 0

    def received(self, downlink):
        port, data = downlink
        if port != CONFIG_PORT:
            self.log("sensing: a downlink on port %d is not for us; ignored" % port)
            return
        try:
            self.inbox.append(decode_downlink(data))
        except ConfigError as e:
            self.inbox.append(e)

    def settings(self):
        out = self.inbox
        self.inbox = []
        return out

    def report(self, status):
        """Send the status uplink when it is due: changed since the last one (and STATUS_GAP_MS after it), or
        unchanged for STATUS_EVERY_MS. Only once the readings in the buffer had their try this cycle, so it
        never takes a reading's place; unconfirmed, and a status the modem cannot send now goes later."""
        buf = status.buf
        if self.clock is None or not self.radio.joined or (len(buf) and not self.tried):
            return
        faults = status.all_faults()
        refused = bool(status.message)
        key = encode_status(faults, 0, 0, buf.dropped, buf.untimed, refused)
        if not self._status_due(key):
            return
        self.tried = False
        payload = encode_status(faults, self.clock.boot, len(buf), buf.dropped, buf.untimed, refused, self.battery)
        downlink = None
        try:
            downlink = self.radio.send(lorawan.STATUS_PORT, payload, False)
        except lorawan.ModemError as e:
            if e.kind == "timeout":
                self.configured = False
            if e.kind != lorawan.modem.TOO_LONG:
                return  # busy, duty cycle, no session: the readings' sends say what is wrong
            self.log("sensing: the status (%d bytes) does not fit this data rate; not sent" % len(payload))
        self.said, self.said_at = key, self.radio.clock.ticks_ms()
        try:
            write_atomic(self.files, join(self.config["state_dir"], STATUS_FILE), key)
        except OSError:  # a full flash: the next start sends this status again, no worse
            pass
        if downlink is not None:
            self.received(downlink)

    def _status_due(self, key):
        clock = self.radio.clock
        now = clock.ticks_ms()
        if self.started is None:
            self.started = now
            self.said = read_atomic(self.files, join(self.config["state_dir"], STATUS_FILE))
        if key != self.said:
            return self.said_at is None or clock.ticks_diff(now, self.said_at) >= STATUS_GAP_MS
        return clock.ticks_diff(now, self.started if self.said_at is None else self.said_at) >= STATUS_EVERY_MS

    def close(self, clean=False, state="offline"):
        pass
