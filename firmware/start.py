# What app.cycles does once per start, in a module loaded for it and let go afterwards (buffer.load and
# release), so that none of it stays in the heap while the loop runs; board.py, which only the start uses, is
# let go too. MicroPython common subset. (main.py's own start, the config and WiFi, is prepare.py.)
#
#   board_part()   what the board has (LED, watchdog, modem UART, its pin map); board.py goes after it
#   sensors_part() the sensors on its buses (the drivers, found by sensors/registry.py, which goes after it)
#   ranges_part()  the drivers read together, with the valid ranges of their quantities (quantities.py goes)
#   device()       the loop's objects, made from the config and those, after a collection
#
# Nothing made here may keep a function of this module (a closure, a bound method, a class): that would keep
# the whole module in the heap. The objects it makes are of the loop's modules (app, status, power, ...).

import sys
import time

try:
    from . import app, power
    from .buffer import SEGMENT, Buffer, Files, join, load, release
    from .clock import board_rtc
    from .seq import SeqCounter
    from .status import Led, Status
except ImportError:  # copied flat onto a board
    import app
    import power
    from buffer import SEGMENT, Buffer, Files, join, load, release
    from clock import board_rtc
    from seq import SeqCounter
    from status import Led, Status

# --- app.cycles' start ---------------------------------------------------------------------------------
def board_part(config, sensor=None, hardware=None, wdt=None):
    """The first part of app.cycles' start, the one that needs board.py (let go after it): what the board
    has. [status, LED, watchdog, `sensor`, the Hardware, the LoRaWAN modem's (UART, clock) or None, the pin
    map], for sensors_part()."""
    board = load("board")
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
    modem = None
    if config["transport"] == "lorawan":
        modem = (board.modem_uart(config, hardware, board_map), hardware.modem_clock)
    release(board)
    return [status, led, wdt, sensor, hardware, modem, board_map]


def sensors_part(config, part):
    """The second part, after a collection (board.py is gone): the sensors, unless given (the emulated one,
    or what reading.Sensors keeps of the drivers found). A generator: it yields None after each bus (the
    caller collects there, so no two buses' drivers are in the heap together), then [status, LED, watchdog,
    sensors, the machine module, the modem, the quantities the drivers give] for ranges_part()."""
    status, led, wdt, sensors, hardware, modem, board_map = part
    part[4] = part[6] = None
    names = None
    if sensors is None:
        for got in find_sensors(config, hardware, board_map, status.boot_faults):
            if got is None:
                yield None
            else:
                sensors, names = got
    got = [status, led, wdt, sensors, hardware.machine, modem, names]
    part = status = led = wdt = sensors = hardware = modem = board_map = names = None  # the frame outlives the yield
    yield got


def ranges_part(part):
    """The third part, after a collection (finding the chips is gone): the drivers found become a
    reading.Sensors, with the valid ranges of the quantities they give, taken from the quantity registry,
    which goes after it. (status, LED, watchdog, sensors, the machine module, the modem) for device()."""
    if isinstance(part[3], list):
        part[3] = read_together(part[3], part[6])
    return tuple(part[:6])


def device(config, part, clock=None, sleep=time.sleep, log=print, client_factory=None, files=None,
           config_file=None):
    """The last part: (app.Device with its uplink, the seq counter, the sensors) for app.cycles, from what
    sensors_part() found; see app.run."""
    status, led, wdt, sensors, machine, modem = part
    state = config["state_dir"]
    files = files or Files()
    pw = power.Power(config["sleep"], machine, led, wdt, config["watchdog_ms"], sleep,
                     power.state_store(machine, state, files))
    woke = pw.woke()
    seqs = SeqCounter(join(state, "seq"), files=files)
    if woke.get("limit") == seqs.limit and 0 <= woke.get("seq", -1) <= seqs.limit:
        seqs.value = woke["seq"]  # back from deep sleep: carry on without a gap or a flash write
    buf = Buffer(state, config["buffer_bytes"], SEGMENT, files)
    status.buf = buf
    adopt_queue(state, buf, files)
    clock = clock or app.make_clock(config, state, files, rtc=board_rtc(machine))
    pw.feed()
    dev = app.Device(config, buf, clock, None, log, status, led, pw, config_file, files)
    dev.note_faults(status.boot_faults)
    try:
        dev.uplink = make_uplink(config, status, modem, pw, log, client_factory)
    except BaseException:
        seqs.close()
        raise
    return dev, seqs, sensors


def find_sensors(config, hardware, board_map, faults):
    """The sensors for `config`: the emulated one (its read() gives the values), or what reading.Sensors
    keeps of the driver of every chip that answers on the board's buses (read_together() makes them one
    sensor). A generator: it yields None after each bus, once that bus's driver modules are let go, then
    (the sensors, the quantities the drivers give). Faults found on the way (a bus that cannot be opened, a
    chip that does not start) go into `faults`. Finding the chips (sensors/registry.py) is let go."""
    if config["sensors"] == "emulated" or not hardware.has_buses():
        yield load("sensors.emulated").EmulatedSensor(config["seed"]), None
        return
    registry = load("sensors.registry")
    reading = load("sensors.reading")
    finding = reading.drivers_loaded()  # the registry and what it imports stay while the buses are looked at
    buses = registry.open_buses(board_map, hardware.machine, hardware.onewire,
                                uart=bool(config["uart_sensor"]), faults=faults)
    kept = []
    names = []
    for bus in registry.BUSES:
        keep_found(registry.find_on(bus, buses, config["uart_sensor"] or None, faults, hardware.sleep_ms),
                   reading, kept, names)
        reading.let_go(finding)
        yield None
    buses = None
    if not kept:
        faults.append({"sensor": "board", "fault": "absent",
                       "message": "no sensor answers on the board's buses: check the wiring"})
    let_go(registry)
    reading.let_go([])
    registry = reading = None  # this generator's frame outlives its last yield
    yield kept, names


def keep_found(drivers, reading, kept, names):
    """What reading.Sensors keeps of each driver into `kept`, the quantities they give into `names`. A call
    of its own: a generator's frame would hold on to the last driver (and its module) after the loop."""
    for driver in drivers:
        kept.append(reading.keep(driver))
        names += getattr(driver, "QUANTITIES", ())


def read_together(kept, names):
    """A reading.Sensors of the drivers kept (a list of what reading.Sensors keeps of each, or of drivers),
    with the valid ranges of the quantities they give (`names`; None: the drivers' own QUANTITIES); the
    quantity registry is let go: the loop keeps reading.py, what the drivers know and those ranges."""
    reading = load("sensors.reading")
    quantities = load("quantities")
    if names is None:
        names = []
        for driver in kept:
            names += getattr(driver, "QUANTITIES", ())
    sensors = reading.Sensors(kept, reading.limits(quantities, names))
    let_go(quantities)
    kept = None
    reading.let_go([])  # the drivers' modules, if drivers were given: loaded again for each reading
    return sensors


def let_go(module):
    """buffer.release, and for a module of a subpackage (sensors/), its package's hold on it too. Not folded
    into buffer.release: that one stays in the heap with the loop, and doing this there cost 64 B more of the
    emulated sensor's reconnection peak (2,000 cycles, 32-bit: 49,072 -> 49,136 B; the target is 49,152)."""
    release(module)
    if sys.implementation.name != "micropython":
        return
    name = module.__name__
    dot = name.rfind(".")
    parent = sys.modules.get(name[:dot]) if dot > 0 else None
    if parent is not None and getattr(parent, name[dot + 1:], None) is module:
        delattr(parent, name[dot + 1:])


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


def make_uplink(config, status, modem, pw, log, client_factory=None):
    if config["transport"] != "lorawan":
        return app.Uplink(config, status, client_factory)
    try:
        from . import lorawan
        from .lora_uplink import FedClock, LoraUplink
    except ImportError:
        import lorawan
        from lora_uplink import FedClock, LoraUplink
    clock = FedClock(modem[1] or lorawan.modem.Clock(), pw.feed)
    radio = lorawan.make(config["lora_modem"], modem[0], clock)
    return LoraUplink(config, radio, log)
