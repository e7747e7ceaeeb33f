# An emulated RAK3172 with RUI3 firmware answering as RAK's "RUI3 AT Command Manual" shows: value lines,
# then a status line (OK, AT_PARAM_ERROR, AT_BUSY_ERROR, AT_NO_NETWORK_JOINED, ...), and "+EVT:" lines
# when a join or send finishes. Scripted failures are attributes set by a test.

from tests.firmware.modems.uart import EU868_MAX_PAYLOAD, Emulator

JOIN_MS = 6000
SEND_MS = 2000
HEX = "0123456789abcdefABCDEF"


def is_hex(text, digits=None):
    if digits is not None and len(text) != digits:
        return False
    return len(text) % 2 == 0 and all([ch in HEX for ch in text])


class Rak3172Emulator(Emulator):
    def __init__(self, clock):
        Emulator.__init__(self, clock)
        self.settings = {"NWM": "1", "NJM": "1", "BAND": "4", "DEVEUI": "AC1F09FFFE000001",
                         "APPEUI": "0000000000000000", "APPKEY": None, "ADR": "1", "DR": "0", "CFM": "0"}
        self.joined = False
        self.joining = False
        self.echo = False  # ATE: echo each command before its reply
        # scripted behaviour
        self.join_failures = 0
        self.send_errors = []  # the next sends are answered with these status lines (AT_BUSY_ERROR, ...)
        self.downlinks = []
        self.ack = True
        self.rx_first = False  # report a downlink before +EVT:TX_DONE instead of after

    def handle(self, line):
        if self.echo:
            self.say(line)
        if line == "AT":
            self.say("OK")
            return
        if line == "ATE":
            self.echo = not self.echo
            self.say("OK")
            return
        if not line.startswith("AT+"):
            self.say("AT_ERROR")
            return
        name, eq, arg = line[3:].partition("=")
        if name == "JOIN":
            self._join(arg)
        elif name == "SEND":
            self._send(arg)
        elif name not in self.settings:
            self.say("AT_ERROR")
        elif arg == "?":
            self.say(f"AT+{name}={self.settings[name]}")
            self.say("OK")
        else:
            self._set(name, arg)

    def _set(self, name, arg):
        ok = {"DEVEUI": is_hex(arg, 16), "APPEUI": is_hex(arg, 16), "APPKEY": is_hex(arg, 32),
              "NJM": arg in ("0", "1"), "ADR": arg in ("0", "1"), "CFM": arg in ("0", "1"),
              "BAND": arg.isdigit() and int(arg) <= 12, "DR": arg.isdigit() and int(arg) <= 5,
              "NWM": arg in ("0", "1")}[name]
        if not ok:
            self.say("AT_PARAM_ERROR")
            return
        if name == "NWM" and arg != self.settings["NWM"]:
            # Changing the work mode restarts the module: a banner, no status line.
            self.settings["NWM"] = arg
            self.joined = False
            self.say("RAKwireless RAK3172 Example", 500)
            self.say("------------------------------------------------------")
            self.say("Current Work Mode: " + ("LoRaWAN." if arg == "1" else "LoRa P2P."))
            return
        self.settings[name] = arg
        self.say("OK")

    def _join(self, arg):
        if self.joining:
            self.say("AT_BUSY_ERROR")
            return
        parts = arg.split(":") if arg else ["1"]
        if parts[0] != "1" or len(parts) > 4:
            self.say("AT_PARAM_ERROR")
            return
        self.say("OK")
        self.joining = True
        if self.join_failures:
            self.join_failures -= 1
            self.say("+EVT:JOIN_FAILED_RX_TIMEOUT", JOIN_MS)
        else:
            self.joined = True
            self.say("+EVT:JOINED", JOIN_MS)
        self.joining = False  # the emulator finishes the join at once; its events come later

    def _send(self, arg):
        port, _, payload = arg.partition(":")
        if not port.isdigit() or not 1 <= int(port) <= 223 or not is_hex(payload) or not payload:
            self.say("AT_PARAM_ERROR")
            return
        if not self.joined:
            self.say("AT_NO_NETWORK_JOINED")
            return
        if self.send_errors:
            self.say(self.send_errors.pop(0))
            return
        if len(payload) // 2 > EU868_MAX_PAYLOAD[int(self.settings["DR"])]:
            self.say("AT_PARAM_ERROR")
            return
        confirmed = self.settings["CFM"] == "1"
        self.uplinks.append((int(port), payload.lower(), confirmed))
        self.say("OK")
        downlink = None
        if self.downlinks:
            dport, data = self.downlinks.pop(0)
            downlink = f"+EVT:RX_1:-88:7:UNICAST:{dport}:" + "".join([f"{b:02x}" for b in data])
        if downlink and self.rx_first:
            self.say(downlink, SEND_MS)
        if not confirmed:
            self.say("+EVT:TX_DONE", SEND_MS)
        elif self.ack:
            self.say("+EVT:SEND_CONFIRMED_OK", SEND_MS)
        else:
            self.say("+EVT:SEND_CONFIRMED_FAILED(4)", SEND_MS)
        if downlink and not self.rx_first:
            self.say(downlink)
