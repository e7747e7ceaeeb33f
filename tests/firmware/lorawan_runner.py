# Runs the LoRaWAN drivers against the emulated modems and prints what happened in each scenario, as one
# JSON document. Written in the MicroPython common subset: tests/firmware/test_lorawan.py runs it under the
# MicroPython unix port (MICROPYPATH = the repository root).
#
#   micropython tests/firmware/lorawan_runner.py [scenario ...]
import json
import sys

from firmware import lorawan
from firmware.lorawan import modem
from tests.firmware.modems.rak3172 import Rak3172Emulator
from tests.firmware.modems.uart import FakeUart, VirtualClock
from tests.firmware.modems.wio_e5 import WioE5Emulator

DEV_EUI = "2CF7F1C0420005B1"
APP_EUI = "0000000000000000"
APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
FULL_AIR = {"pm1": 12.3, "pm2_5": 20.5, "pm10": 35.1, "co2": 612, "temperature": 21.7, "humidity": 63.5,
            "pressure": 1008.4, "battery_voltage": 3.71}
EMULATORS = {"wio_e5": WioE5Emulator, "rak3172": Rak3172Emulator}


class Rig:
    def __init__(self, kind):
        self.clock = VirtualClock()
        self.emulator = EMULATORS[kind](self.clock)
        self.radio = lorawan.make(kind, FakeUart(self.emulator), self.clock)

    def configure(self, data_rate=5):
        self.radio.configure(DEV_EUI, APP_EUI, APP_KEY, region="EU868", data_rate=data_rate)

    def ready(self, data_rate=5):
        self.configure(data_rate)
        self.radio.join()
        self.emulator.received = []
        self.clock.now = 0

    def result(self, **extra):
        out = {"commands": self.emulator.received, "uplinks": [list(u) for u in self.emulator.uplinks],
               "ms": self.clock.now, "joined": self.radio.joined}
        for key in extra:
            out[key] = extra[key]
        return out


def attempt(rig, action):
    """Run action(); the rig's result with what it returned, or the ModemError / ValueError it raised."""
    try:
        value = action()
    except modem.ModemError as exc:
        return rig.result(error=exc.kind, message=str(exc))
    except ValueError as exc:
        return rig.result(value_error=str(exc))
    if isinstance(value, tuple):
        value = [value[0], "".join([f"{b:02x}" for b in value[1]])]
    return rig.result(value=value)


def configure_and_join(kind):
    rig = Rig(kind)
    return attempt(rig, lambda: (rig.configure(), rig.radio.join())[1])


def send_full_air(kind):
    rig = Rig(kind)
    rig.ready()
    return attempt(rig, lambda: lorawan.send_reading(rig.radio, 17, FULL_AIR))


def confirmed_twice(kind):
    rig = Rig(kind)
    rig.ready()

    def twice():
        rig.radio.send(10, b"\x01\x02", confirmed=True)
        return rig.radio.send(10, b"\x01\x03", confirmed=True)
    return attempt(rig, twice)


def confirmed_no_ack(kind):
    rig = Rig(kind)
    rig.ready()
    rig.emulator.ack = False
    return attempt(rig, lambda: rig.radio.send(10, b"\x01", confirmed=True))


def downlink(kind, rx_first=False):
    rig = Rig(kind)
    rig.ready()
    rig.emulator.downlinks.append((3, b"\x01\x2c"))
    rig.emulator.rx_first = rx_first
    return attempt(rig, lambda: rig.radio.send(10, b"\x01\x02\x03"))


def join_fails_twice(kind, attempts):
    rig = Rig(kind)
    rig.configure()
    rig.emulator.received = []
    rig.emulator.join_failures = 2
    return attempt(rig, lambda: rig.radio.join_with_retries(attempts=attempts, wait_ms=1000))


def not_joined(kind):
    rig = Rig(kind)
    rig.configure()
    rig.emulator.received = []
    return attempt(rig, lambda: rig.radio.send(10, b"\x01"))


def send_error(kind, reply):
    rig = Rig(kind)
    rig.ready()
    rig.emulator.send_errors.append(reply)
    return attempt(rig, lambda: rig.radio.send(10, b"\x01"))


def too_long(kind):
    rig = Rig(kind)
    rig.ready(data_rate=0)
    return attempt(rig, lambda: rig.radio.send(10, bytes(60)))


def silent_send(kind):
    rig = Rig(kind)
    rig.ready()
    rig.radio.send(10, b"\x01")  # sets the port, so the next command is the send itself
    rig.emulator.received = []
    rig.clock.now = 0
    rig.emulator.silent = 1
    return attempt(rig, lambda: rig.radio.send(10, b"\x02"))


def silent_join(kind):
    rig = Rig(kind)
    rig.configure()
    rig.emulator.received = []
    rig.emulator.silent = 1
    return attempt(rig, rig.radio.join)


def bad_key(kind):
    rig = Rig(kind)
    return attempt(rig, lambda: rig.radio.configure(DEV_EUI, APP_EUI, "2B7E1516"))


def wio_locked_dev_eui():
    rig = Rig("wio_e5")
    rig.emulator.lock_dev_eui = True
    rig.emulator.dev_eui = "2CF7F1C042000999"
    return attempt(rig, rig.configure)


def rak_echo_on():
    rig = Rig("rak3172")
    rig.emulator.echo = True
    rig.ready()
    return attempt(rig, lambda: rig.radio.send(10, b"\x0a"))


def rak_from_p2p():
    rig = Rig("rak3172")
    rig.emulator.settings["NWM"] = "0"
    return attempt(rig, rig.configure)


SCENARIOS = {
    "wio_join": lambda: configure_and_join("wio_e5"),
    "wio_send": lambda: send_full_air("wio_e5"),
    "wio_confirmed": lambda: confirmed_twice("wio_e5"),
    "wio_no_ack": lambda: confirmed_no_ack("wio_e5"),
    "wio_downlink": lambda: downlink("wio_e5"),
    "wio_join_retries": lambda: join_fails_twice("wio_e5", 3),
    "wio_join_gives_up": lambda: join_fails_twice("wio_e5", 2),
    "wio_not_joined": lambda: not_joined("wio_e5"),
    "wio_busy": lambda: send_error("wio_e5", "LoRaWAN modem is busy"),
    "wio_no_band": lambda: send_error("wio_e5", "No band in 2345ms"),
    "wio_no_free_channel": lambda: send_error("wio_e5", "No free channel"),
    "wio_too_long": lambda: too_long("wio_e5"),
    "wio_timeout": lambda: silent_send("wio_e5"),
    "wio_join_timeout": lambda: silent_join("wio_e5"),
    "wio_bad_key": lambda: bad_key("wio_e5"),
    "wio_locked_dev_eui": wio_locked_dev_eui,
    "rak_join": lambda: configure_and_join("rak3172"),
    "rak_send": lambda: send_full_air("rak3172"),
    "rak_confirmed": lambda: confirmed_twice("rak3172"),
    "rak_no_ack": lambda: confirmed_no_ack("rak3172"),
    "rak_downlink": lambda: downlink("rak3172"),
    "rak_downlink_first": lambda: downlink("rak3172", rx_first=True),
    "rak_join_retries": lambda: join_fails_twice("rak3172", 3),
    "rak_join_gives_up": lambda: join_fails_twice("rak3172", 2),
    "rak_not_joined": lambda: not_joined("rak3172"),
    "rak_busy": lambda: send_error("rak3172", "AT_BUSY_ERROR"),
    "rak_duty_cycle": lambda: send_error("rak3172", "AT_DUTYCYLE_RESTRICTED"),
    "rak_too_long": lambda: too_long("rak3172"),
    "rak_timeout": lambda: silent_send("rak3172"),
    "rak_join_timeout": lambda: silent_join("rak3172"),
    "rak_bad_key": lambda: bad_key("rak3172"),
    "rak_echo": rak_echo_on,
    "rak_from_p2p": rak_from_p2p,
}


def main(names):
    out = {}
    for name in names or sorted(SCENARIOS):
        out[name] = SCENARIOS[name]()
    print(json.dumps(out))


main(sys.argv[1:])
