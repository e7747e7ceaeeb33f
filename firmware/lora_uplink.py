# Sending the buffer over LoRaWAN: one reading per uplink in the codec's compact form, each removed from
# the buffer only once the modem reports the send done (for a confirmed uplink: acknowledged). Settings
# downlinks on config.CONFIG_PORT come back to the loop. MicroPython common subset.

import json

try:
    from . import encode, lorawan
    from .config import CONFIG_PORT, ConfigError, decode_downlink
except ImportError:  # copied flat onto a board
    import encode
    import lorawan
    from config import CONFIG_PORT, ConfigError, decode_downlink


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
    def __init__(self, config, radio, log):
        self.config = config
        self.radio = radio
        self.log = log
        self.configured = False
        self.inbox = []  # settings changes from downlinks: dicts, or ConfigError for one we cannot read

    def send(self, buf, clock):
        """Send the buffered readings, oldest first, until the buffer is empty or the modem cannot send.
        Raises UplinkError; the reading being sent stays in the buffer."""
        c = self.config
        try:
            if not self.configured:
                self.radio.configure(c["lora_dev_eui"], c["lora_app_eui"], c["lora_app_key"],
                                     region=c["lora_region"], data_rate=c["lora_data_rate"])
                self.configured = True
            if not self.radio.joined:
                self.radio.join()
            while len(buf):
                rec = json.loads(buf.peek(1, 0)[0])
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
        pass  # LoRaWAN has no status topic: the LED shows the device's state

    def close(self, clean=False, state="offline"):
        pass
