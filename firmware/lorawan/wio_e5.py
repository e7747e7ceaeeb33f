# Seeed Wio-E5 (LoRa-E5, STM32WLE5) with its factory AT firmware, after Seeed's "LoRa-E5 AT Command
# Specification V1.0". Every reply line starts with "+<COMMAND>: "; a long command (JOIN, MSGHEX) prints
# several and ends with "+<COMMAND>: Done", or with one error line. The UART runs at 9600 8N1.
#
# Not confirmed against a module, so said here: whether "No free channel" always means the duty-cycle
# limit (we treat it so, like "No band in <n>ms"), whether error lines are followed by "Done" (we stop at
# either), and whether AT+DR takes "5" as well as "DR5" (we send the number, as the spec's examples do).

try:
    from . import modem
except ImportError:  # copied flat onto a board
    import modem

ModemError = modem.ModemError

# AT+DR=<band> takes the band plan by name.
REGIONS = {"EU868": "EU868", "US915": "US915", "AU915": "AU915", "AS923": "AS923", "KR920": "KR920",
           "IN865": "IN865"}

# ERROR(<n>) codes from the specification.
ERRORS = {-1: "a parameter is wrong", -10: "the command is unknown", -11: "the command is malformed",
          -12: "the command is not available in the current mode", -20: "too many parameters",
          -21: "the command is too long", -22: "the command's end was not received in time",
          -23: "the command holds an invalid character"}


def _error_code(rest):
    # "ERROR(-12)" -> -12, or None
    if not rest.startswith("ERROR("):
        return None
    try:
        return int(rest[6:rest.index(")")])
    except ValueError:
        return None


def parse_downlink(rest):
    """'PORT: 2; RX: "0A0B"' -> (2, b'\\x0a\\x0b'); None when the line is not a downlink."""
    if not rest.startswith("PORT:") or "RX:" not in rest:
        return None
    port = int(rest[5:rest.index(";")].strip())
    data = rest[rest.index("RX:") + 3:].strip().strip('"')
    return (port, modem.from_hex(data))


class WioE5(modem.Modem):
    name = "Wio-E5"
    REGIONS = REGIONS

    def __init__(self, uart, clock=None, **timeouts):
        modem.Modem.__init__(self, uart, clock, **timeouts)
        self._app_port = None

    def _refused(self, command, rest):
        code = _error_code(rest)
        why = ERRORS.get(code, rest)
        return ModemError(modem.REFUSED, "the %s refused %s: %s" % (self.name, command, why))

    def command(self, command, tag=None):
        """Send one short command and return its reply after '+TAG: ' (TAG from the command by default)."""
        if tag is None:
            tag = command[3:].split("=")[0] if command.startswith("AT+") else "AT"
        prefix = "+" + tag + ": "
        self.port.discard()
        self.port.send(command)
        deadline = self.port.deadline(self.command_ms)
        while True:
            line = self.port.read_line(deadline)
            if line is None:
                raise self.timeout(command, self.command_ms)
            if line.startswith(prefix):
                rest = line[len(prefix):]
                if _error_code(rest) is not None:
                    raise self._refused(command, rest)
                return rest

    def _set_id(self, which, value):
        rest = self.command('AT+ID=%s,"%s"' % (which, value), "ID")
        kept = rest.split(",")[-1].replace(":", "").strip().upper()
        if kept != value:
            raise ModemError(modem.REFUSED, "the %s kept %s %s instead of %s: its firmware may lock it, so "
                                            "register the device with the modem's own %s"
                             % (self.name, which, kept, value, which))

    def configure(self, dev_eui, app_eui, app_key, region="EU868", data_rate=None, adr=True):
        dev_eui = modem.check_hex("DevEUI", dev_eui, 16)
        app_eui = modem.check_hex("AppEUI (JoinEUI)", app_eui, 16)
        app_key = modem.check_hex("AppKey", app_key, 32)
        band = self.region_code(region)
        self.command("AT")
        self.command("AT+MODE=LWOTAA")
        self.command("AT+DR=" + band)
        self._set_id("DevEui", dev_eui)
        self._set_id("AppEui", app_eui)
        self.command('AT+KEY=APPKEY,"%s"' % app_key)
        self.command("AT+ADR=" + ("ON" if adr else "OFF"))
        if data_rate is not None:
            self.command("AT+DR=%d" % data_rate)
        self.joined = False

    def join(self):
        self.port.discard()
        self.port.send("AT+JOIN")
        deadline = self.port.deadline(self.join_ms)
        joined = False
        failed = False
        while True:
            line = self.port.read_line(deadline)
            if line is None:
                raise self.timeout("AT+JOIN", self.join_ms)
            if not line.startswith("+JOIN: "):
                continue
            rest = line[7:]
            if rest.startswith("Network joined") or rest.startswith("Joined already"):
                joined = True
            elif rest.startswith("Join failed"):
                failed = True
            elif rest.startswith("LoRaWAN modem is busy"):
                raise ModemError(modem.BUSY, "the %s is busy with an earlier join or send" % self.name)
            elif rest.startswith("No band"):
                raise ModemError(modem.DUTY_CYCLE, "the %s must wait for the duty-cycle limit before joining (%s)"
                                 % (self.name, rest))
            elif rest.startswith("Not in OTAA mode"):
                raise ModemError(modem.REFUSED, "the %s is not in OTAA mode: configure it first" % self.name)
            elif _error_code(rest) is not None:
                raise self._refused("AT+JOIN", rest)
            if rest.startswith("Done") or joined and rest.startswith("Joined already"):
                break
        if failed or not joined:
            self.joined = False
            raise ModemError(modem.JOIN_FAILED, "the %s sent a join request but no join accept came back: check "
                                                "the gateway is in range and the keys match the network's"
                             % self.name)
        self.joined = True

    def send(self, port, payload, confirmed=False):
        """Send `payload` on `port`; return (port, bytes) of a downlink that came back, or None."""
        self.check_uplink(port, payload)
        if port != self._app_port:
            self.command("AT+PORT=%d" % port)
            self._app_port = port
        verb = "CMSGHEX" if confirmed else "MSGHEX"
        command = 'AT+%s="%s"' % (verb, modem.to_hex(payload))
        prefix = "+" + verb + ": "
        timeout_ms = self.confirmed_ms if confirmed else self.send_ms
        self.port.discard()
        self.port.send(command)
        deadline = self.port.deadline(timeout_ms)
        acked = False
        downlink = None
        while True:
            line = self.port.read_line(deadline)
            if line is None:
                raise self.timeout("AT+" + verb, timeout_ms)
            if not line.startswith(prefix):
                continue
            rest = line[len(prefix):]
            if rest.startswith("Done"):
                break
            if rest.startswith("ACK Received"):
                acked = True
            elif rest.startswith("PORT:"):
                downlink = parse_downlink(rest)
            else:
                self._send_error(verb, rest, len(payload))
        if confirmed and not acked:
            raise ModemError(modem.NO_ACK, "the network did not acknowledge the confirmed uplink: it may not "
                                           "have arrived, so keep the reading and send it again")
        return downlink

    def _send_error(self, verb, rest, size):
        if rest.startswith("Please join network first"):
            self.joined = False
            raise ModemError(modem.NOT_JOINED, "the %s has not joined the network: join first" % self.name)
        if rest.startswith("LoRaWAN modem is busy"):
            raise ModemError(modem.BUSY, "the %s is busy with an earlier send or join" % self.name)
        if rest.startswith("No band") or rest.startswith("No free channel"):
            raise ModemError(modem.DUTY_CYCLE, "the %s must wait for the duty-cycle limit before sending (%s)"
                             % (self.name, rest))
        if rest.startswith("Length error"):
            most = rest[12:].strip()
            raise ModemError(modem.TOO_LONG, "%d bytes do not fit in one uplink at the current data rate (at most %s)"
                             % (size, most or "fewer"))
        if rest.startswith("DR error"):
            raise ModemError(modem.REFUSED, "the %s refused the data rate for this region's channels" % self.name)
        if _error_code(rest) is not None:
            raise self._refused("AT+" + verb, rest)
        # Start, Wait ACK, FPENDING, RXWIN1 ..., MACCMD ...: progress, not an outcome.
