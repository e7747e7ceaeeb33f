# Safe mode: what the board does while its config cannot be used (prepare.py loads this module only then). It
# shows the "config invalid" LED pattern, publishes "config invalid: <why>" as its status when it has enough
# to reach the broker, and waits for good settings on its config topic, which it keeps and then runs with. On
# a board it waits for ever (feeding the watchdog); on a laptop it says why and stops, unless
# SENSING_SAFE_SECONDS says to wait. MicroPython common subset.

import time

try:
    from . import app, board, mqtt, power
    from .buffer import load
    from .prepare import getenv
    from .status import Led, Status
except ImportError:  # copied flat onto a board
    import app
    import board
    import mqtt
    import power
    from buffer import load
    from prepare import getenv
    from status import Led, Status


def safe_wait_s(hardware):
    """How long to wait for good settings: for ever on a board, SENSING_SAFE_SECONDS (0) on a laptop."""
    if hardware.has_buses():
        return None
    try:
        return float(getenv("SENSING_SAFE_SECONDS") or 0)
    except ValueError:
        return 0


def safe_mode(path, error, hardware, wait_s, log=print, sleep=time.sleep, client_factory=None, wdt=None):
    """Show and publish why the config is invalid; wait for settings that fix it. True once fixed."""
    settings = load("config")
    status = Status()
    status.state = "config_invalid"
    status.message = "config invalid: %s" % error
    log("sensing: %s" % status.message)
    try:
        given = settings.read(path)
    except settings.ConfigError:
        given = {}
    base = dict(settings.DEFAULTS)
    base.update(given if isinstance(given, dict) else {})
    led = Led(board.led_pin(hardware, _board_map(hardware, base)), True)
    led.show("config_invalid")
    pw = power.Power("none", hardware.machine, led, wdt or power.watchdog(hardware.machine, settings.DEFAULTS[
        "watchdog_ms"]), settings.DEFAULTS["watchdog_ms"], sleep)
    uplink = None
    try:
        settings.check_identity(base)
        uplink = app.Uplink(base, status, client_factory)
    except (settings.ConfigError, TypeError, KeyError):
        pass  # no id or secret: the LED alone can say it
    start = mqtt.ticks_ms()
    try:
        while wait_s is None or mqtt.elapsed_ms(start) < wait_s * 1000:
            if uplink is not None and _fixed(settings, path, given, uplink, status, log):
                return True
            pw.rest(1)
    finally:
        if uplink is not None:
            uplink.close()
    return False


def _board_map(hardware, base):
    if not hardware.has_buses():
        return {}
    try:
        return board.load_map(hardware, base.get("board") or "")
    except (ValueError, AttributeError):
        return {}


def _fixed(settings, path, given, uplink, status, log):
    try:
        if uplink.client is None:
            uplink.connect()
        for changes in uplink.settings():
            try:
                if isinstance(changes, ValueError):  # a change that cannot be read (see app.Uplink)
                    raise settings.ConfigError(str(changes))
                fixed = settings.update(given, changes)
            except settings.ConfigError as e:
                status.message = "config invalid: %s" % e
                continue
            settings.save(path, fixed)
            log("sensing: the settings from the hub fix the config; starting")
            return True
        uplink.report()
    except (OSError, AttributeError):
        uplink.close()
    return False
