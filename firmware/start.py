# What app.cycles does once per start, in a module loaded for it and let go afterwards (buffer.load and
# release), so that none of it stays in the heap while the loop runs; board.py, which only the start uses, is
# let go too. MicroPython common subset. (main.py's own start, the config and WiFi, is prepare.py.)
#
#   board_part()   what the board has (LED, watchdog, sensors, modem UART); board.py goes after it
#   device()       the loop's objects, made from the config and those, after a collection
#
# Nothing made here may keep a function of this module (a closure, a bound method, a class): that would keep
# the whole module in the heap. The objects it makes are of the loop's modules (app, status, power, ...).

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
    has. (status, LED, watchdog, sensors, the machine module, the LoRaWAN modem's (UART, clock) or None)."""
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
    sensors = sensor or find_sensors(config, hardware, board_map, status.boot_faults, board)
    modem = None
    if config["transport"] == "lorawan":
        modem = (board.modem_uart(config, hardware, board_map), hardware.modem_clock)
    release(board)
    return status, led, wdt, sensors, hardware.machine, modem


def device(config, part, clock=None, sleep=time.sleep, log=print, client_factory=None, files=None,
           config_file=None):
    """The second part: (app.Device with its uplink, the seq counter, the sensors) for app.cycles, from
    what board_part() found; see app.run."""
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


def find_sensors(config, hardware, board_map, faults, board):
    """board.find_sensors, read through objects of the sensor modules, not board.py's, so board.py goes
    once the start is done: the emulated sensor (its read() gives the values), or registry.Sensors."""
    if config["sensors"] == "emulated" or not hardware.has_buses():
        return load("sensors.emulated").EmulatedSensor(config["seed"])
    found = board.find_sensors(config, hardware, board_map, faults)
    return load("sensors.registry").Sensors(found.drivers)


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
