# An emulated Seeed Wio-E5 answering as the "LoRa-E5 AT Command Specification V1.0" shows: "+CMD: ..."
# reply lines, long commands ending with "+CMD: Done". Scripted failures are attributes set by a test.

from tests.firmware.modems.uart import EU868_MAX_PAYLOAD, Emulator

FACTORY_DEV_EUI = "2CF7F1C0420005B1"
JOIN_MS = 6000  # join request, then the join-accept windows at 5 and 6 s
SEND_MS = 2000  # airtime and the two receive windows


def colons(hex_text):
    return ":".join([hex_text[i:i + 2] for i in range(0, len(hex_text), 2)])


class WioE5Emulator(Emulator):
    def __init__(self, clock):
        Emulator.__init__(self, clock)
        self.mode = "LWABP"
        self.band = "EU868"
        self.dr = 0
        self.dev_eui = FACTORY_DEV_EUI
        self.app_eui = "8000000000000006"
        self.app_key = None
        self.port = 8
        self.adr = True
        self.joined = False
        # scripted behaviour
        self.join_failures = 0  # the next N joins get no join accept
        self.send_errors = []  # the next sends are answered with these lines instead ("No band in 2345ms", ...)
        self.downlinks = []  # (port, bytes) sent back after the next uplinks
        self.ack = True  # whether confirmed uplinks are acknowledged
        self.lock_dev_eui = False  # firmware that keeps its factory DevEUI

    def handle(self, line):
        if line == "AT":
            self.say("+AT: OK")
            return
        if not line.startswith("AT+"):
            self.say("+AT: ERROR(-10)")
            return
        name, _, arg = line[3:].partition("=")
        handler = getattr(self, "_" + name.lower(), None)
        if handler is None:
            self.say(f"+{name}: ERROR(-10)")
        else:
            handler(arg)

    def _mode(self, arg):
        if arg not in ("LWOTAA", "LWABP", "TEST"):
            self.say("+MODE: ERROR(-1)")
            return
        self.mode = arg
        self.say("+MODE: " + arg)

    def _dr(self, arg):
        if arg in ("EU868", "US915", "AU915", "AS923", "KR920", "IN865"):
            self.band = arg
            self.say("+DR: " + arg)
            return
        number = arg[2:] if arg.startswith("DR") else arg
        if not number.isdigit() or int(number) > 5:
            self.say("+DR: ERROR(-1)")
            return
        self.dr = int(number)
        self.say(f"+DR: DR{self.dr}")
        self.say(f"+DR: {self.band} DR{self.dr}  SF{12 - self.dr}  BW125K ")

    def _id(self, arg):
        which, _, value = arg.partition(",")
        value = value.strip().strip('"').replace(":", "").upper()
        if which not in ("DevEui", "AppEui") or len(value) != 16:
            self.say("+ID: ERROR(-1)")
            return
        if which == "DevEui":
            if not self.lock_dev_eui:
                self.dev_eui = value
            self.say("+ID: DevEui, " + colons(self.dev_eui))
        else:
            self.app_eui = value
            self.say("+ID: AppEui, " + colons(self.app_eui))

    def _key(self, arg):
        which, _, value = arg.partition(",")
        value = value.strip().strip('"')
        if which != "APPKEY" or len(value) != 32:
            self.say("+KEY: ERROR(-1)")
            return
        self.app_key = value
        self.say("+KEY: APPKEY " + value)

    def _adr(self, arg):
        self.adr = arg == "ON"
        self.say("+ADR: " + arg)

    def _port(self, arg):
        self.port = int(arg)
        self.say(f"+PORT: {self.port}")

    def _join(self, arg):
        if self.mode != "LWOTAA":
            self.say("+JOIN: Not in OTAA mode")
            return
        self.say("+JOIN: Start")
        self.say("+JOIN: NORMAL")
        if self.join_failures:
            self.join_failures -= 1
            self.say("+JOIN: Join failed", JOIN_MS)
        else:
            self.joined = True
            self.say("+JOIN: Network joined", JOIN_MS)
            self.say("+JOIN: NetID 000013 DevAddr 26:0B:5C:2A")
        self.say("+JOIN: Done")

    def _msghex(self, arg):
        self._message("MSGHEX", arg, False)

    def _cmsghex(self, arg):
        self._message("CMSGHEX", arg, True)

    def _message(self, verb, arg, confirmed):
        tag = f"+{verb}: "
        payload = arg.strip('"').replace(" ", "")
        if not self.joined:
            self.say(tag + "Please join network first")
            return
        if self.send_errors:
            self.say(tag + self.send_errors.pop(0))
            return
        if len(payload) // 2 > EU868_MAX_PAYLOAD[self.dr]:
            self.say(tag + f"Length error {EU868_MAX_PAYLOAD[self.dr]}")
            return
        self.uplinks.append((self.port, payload.lower(), confirmed))
        self.say(tag + "Start")
        if confirmed:
            self.say(tag + "Wait ACK")
        if confirmed and self.ack:
            self.say(tag + "ACK Received", SEND_MS)
        if self.downlinks:
            port, data = self.downlinks.pop(0)
            hex_text = "".join([f"{b:02X}" for b in data])
            self.say(tag + f'PORT: {port}; RX: "{hex_text}"', SEND_MS)
            self.say(tag + "RXWIN1, RSSI -88, SNR 7.5")
        self.say(tag + "Done", SEND_MS)
