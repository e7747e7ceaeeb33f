# RAKwireless RAK3172 (STM32WLE5) with RUI3 firmware, after RAK's "RUI3 AT Command Manual". A command
# answers with optional value lines, then one status line: OK, AT_ERROR, AT_PARAM_ERROR, AT_BUSY_ERROR,
# AT_NO_NETWORK_JOINED, ... Joining and sending finish later, with asynchronous "+EVT:" lines. 115200 8N1.
#
# Not confirmed against a module, so said here: RUI3 has printed its events in two spellings over the
# years ("+EVT:JOIN_FAILED_RX_TIMEOUT", "+EVT:SEND_CONFIRMED_FAILED(4)" in current firmware, "+EVT:JOIN FAILED",
# "+EVT:SEND CONFIRMED OK" in the manual's older examples): both are read. Whether the downlink event comes
# before or after +EVT:TX_DONE is not documented: we read either order. Older firmware answers a send held
# back by the duty cycle with AT_DUTYCYLE_RESTRICTED (sic), current firmware with AT_BUSY_ERROR.

try:
    from . import modem
except ImportError:  # copied flat onto a board
    import modem

ModemError = modem.ModemError

# AT+BAND=<n> numbers the band plans.
REGIONS = {"EU433": 0, "CN470": 1, "RU864": 2, "IN865": 3, "EU868": 4, "US915": 5, "AU915": 6, "KR920": 7,
           "AS923": 8}

STATUSES = ("OK", "AT_ERROR", "AT_PARAM_ERROR", "AT_BUSY_ERROR", "AT_TEST_PARAM_OVERFLOW", "AT_NO_CLASSB_ENABLE",
            "AT_NO_NETWORK_JOINED", "AT_RX_ERROR", "AT_DUTYCYLE_RESTRICTED", "AT_DUTYCYCLE_RESTRICTED")

# AT+JOIN=<start>:<auto-join at boot>:<seconds between attempts>:<further attempts>. One attempt per
# command: retries and their spacing stay with the caller, so a failure is reported once, not per attempt.
JOIN_COMMAND = "AT+JOIN=1:0:10:0"
RX_GRACE_MS = 300  # after the send's outcome, how long a downlink event may still take to arrive


def parse_downlink(line):
    """'+EVT:RX_1:-70:8:UNICAST:2:0a0b' -> (2, b'\\x0a\\x0b'); None when the line is not a downlink."""
    if not line.startswith("+EVT:RX_"):
        return None
    parts = line.split(":")
    if len(parts) < 7:
        return None
    return (int(parts[-2]), modem.from_hex(parts[-1]))


class Rak3172(modem.Modem):
    name = "RAK3172"
    REGIONS = REGIONS

    def __init__(self, uart, clock=None, **timeouts):
        modem.Modem.__init__(self, uart, clock, **timeouts)
        self._confirmed = None

    def _status_error(self, command, status, size=0):
        if status == "AT_NO_NETWORK_JOINED":
            self.joined = False
            return ModemError(modem.NOT_JOINED, "the %s has not joined the network: join first" % self.name)
        if status == "AT_BUSY_ERROR":
            return ModemError(modem.BUSY, "the %s is busy: an earlier join or send is not finished, or the "
                                          "duty-cycle limit holds the radio back" % self.name)
        if status.startswith("AT_DUTYCY"):
            return ModemError(modem.DUTY_CYCLE, "the %s must wait for the duty-cycle limit before sending" % self.name)
        if status == "AT_PARAM_ERROR" and size:
            return ModemError(modem.REFUSED, "the %s refused %d bytes on this port: too long for the current data "
                                             "rate, or a port outside 1-223" % (self.name, size))
        return ModemError(modem.REFUSED, "the %s refused %s: %s" % (self.name, command, status))

    def command(self, command, timeout_ms=None, size=0):
        """Send one command; return its value lines. Raises ModemError on a status other than OK."""
        timeout_ms = timeout_ms or self.command_ms
        self.port.discard()
        self.port.send(command)
        deadline = self.port.deadline(timeout_ms)
        values = []
        while True:
            line = self.port.read_line(deadline)
            if line is None:
                raise self.timeout(command, timeout_ms)
            if line in STATUSES:
                if line != "OK":
                    raise self._status_error(command, line, size)
                return values
            if line != command and not line.startswith("+EVT:"):  # not our echo (ATE), not a late event
                values.append(line)

    def value(self, name):
        """The value of AT+NAME=?, which RUI3 prints as 'AT+NAME=<value>' (older firmware: '<value>')."""
        for line in self.command("AT+%s=?" % name):
            prefix = "AT+%s=" % name
            return line[len(prefix):] if line.startswith(prefix) else line
        return ""

    def _lorawan_mode(self):
        if self.value("NWM") == "1":
            return
        # Switching from LoRa P2P to LoRaWAN restarts the module: wait for its banner, not for OK.
        self.port.discard()
        self.port.send("AT+NWM=1")
        deadline = self.port.deadline(self.command_ms * 3)
        while True:
            line = self.port.read_line(deadline)
            if line is None:
                raise self.timeout("AT+NWM=1", self.command_ms * 3)
            if "LoRaWAN" in line:
                break
        self.command("AT")

    def configure(self, dev_eui, app_eui, app_key, region="EU868", data_rate=None, adr=True):
        dev_eui = modem.check_hex("DevEUI", dev_eui, 16)
        app_eui = modem.check_hex("AppEUI (JoinEUI)", app_eui, 16)
        app_key = modem.check_hex("AppKey", app_key, 32)
        band = self.region_code(region)
        self.command("AT")
        self._lorawan_mode()
        self.command("AT+NJM=1")
        self.command("AT+BAND=%d" % band)
        self.command("AT+DEVEUI=" + dev_eui)
        self.command("AT+APPEUI=" + app_eui)
        self.command("AT+APPKEY=" + app_key)
        self.command("AT+ADR=%d" % (1 if adr else 0))
        if data_rate is not None:
            self.command("AT+DR=%d" % data_rate)
        self.command("AT+CFM=0")
        self._confirmed = False
        self.joined = False

    def join(self):
        self.command(JOIN_COMMAND)
        deadline = self.port.deadline(self.join_ms)
        while True:
            line = self.port.read_line(deadline)
            if line is None:
                raise self.timeout("AT+JOIN with a join event", self.join_ms)
            if line == "+EVT:JOINED":
                self.joined = True
                return
            if line.startswith("+EVT:JOIN_FAILED") or line.startswith("+EVT:JOIN FAILED"):
                self.joined = False
                raise ModemError(modem.JOIN_FAILED, "the %s sent a join request but no join accept came back (%s): "
                                                    "check the gateway is in range and the keys match the "
                                                    "network's" % (self.name, line[5:]))

    def send(self, port, payload, confirmed=False):
        """Send `payload` on `port`; return (port, bytes) of a downlink that came back, or None."""
        self.check_uplink(port, payload)
        confirmed = bool(confirmed)
        if confirmed != self._confirmed:
            self.command("AT+CFM=%d" % (1 if confirmed else 0))
            self._confirmed = confirmed
        self.command("AT+SEND=%d:%s" % (port, modem.to_hex(payload)), size=len(payload))
        timeout_ms = self.confirmed_ms if confirmed else self.send_ms
        deadline = self.port.deadline(timeout_ms)
        downlink = None
        outcome = None
        while outcome is None:
            line = self.port.read_line(deadline)
            if line is None:
                raise self.timeout("AT+SEND with a send event", timeout_ms)
            outcome = self._outcome(line)
            downlink = parse_downlink(line) or downlink
        if downlink is None:  # a downlink may be reported just after the outcome
            line = self.port.read_line(self.port.deadline(RX_GRACE_MS))
            if line is not None:
                downlink = parse_downlink(line)
        if outcome == "no_ack":
            raise ModemError(modem.NO_ACK, "the network did not acknowledge the confirmed uplink: it may not "
                                           "have arrived, so keep the reading and send it again")
        return downlink

    def _outcome(self, line):
        if line == "+EVT:TX_DONE" or line.startswith("+EVT:SEND_CONFIRMED_OK") \
                or line.startswith("+EVT:SEND CONFIRMED OK"):
            return "done"
        if line.startswith("+EVT:SEND_CONFIRMED_FAILED") or line.startswith("+EVT:SEND CONFIRMED FAILED"):
            return "no_ack"
        return None
