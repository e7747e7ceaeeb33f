# The file at the board's root: load the config, join WiFi if configured, run the app.
#   board:      /main.py runs at boot with /config.json
#   unix port:  MICROPYPATH=<repo> micropython -m firmware.main path/to/config.json
#               (or SENSING_CONFIG=path/to/config.json)
#
# A config that cannot be used does not crash the board: it shows the "config invalid" LED pattern,
# publishes "config invalid: <why>" as its status when it has enough to reach the broker, and waits for
# good settings on its config topic, which it keeps and then runs with. On a board it waits for ever
# (feeding the watchdog); on a laptop it says why and stops, unless SENSING_SAFE_SECONDS says to wait.
import sys
import time

try:
    from . import app, board, mqtt, power
    from .status import Led, Status
except (ImportError, KeyError):  # flat on a board; MicroPython raises KeyError in __main__
    import app
    import board
    import mqtt
    import power
    from status import Led, Status

# The settings module (config.py) is imported only while it is used: app.load_config lets it go once the
# config is good, so the loop runs without its checks in the heap.

DEFAULT_CONFIG = "/config.json"


def _getenv(name):
    try:
        import os
        return os.getenv(name)
    except (ImportError, AttributeError):  # boards have no environment
        return None


def config_path():
    if len(sys.argv) > 1 and sys.argv[1]:
        return sys.argv[1]
    return _getenv("SENSING_CONFIG") or DEFAULT_CONFIG


def join_wifi(config, wait_s=30):
    ssid = config.get("wifi_ssid")
    if not ssid:
        return None
    import network
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    # A wrong password or a network out of reach is final: stop waiting as soon as the radio says so.
    final = [getattr(network, name) for name in ("STAT_WRONG_PASSWORD", "STAT_NO_AP_FOUND", "STAT_CONNECT_FAIL")
             if hasattr(network, name)]
    if not wlan.isconnected():
        wlan.connect(ssid, config.get("wifi_password", ""))
        for _ in range(wait_s * 10):
            if wlan.isconnected() or (final and wlan.status() in final):
                break
            time.sleep(0.1)
    if not wlan.isconnected():
        print("sensing: could not join WiFi %s; readings are kept until it works" % ssid)
    return wlan


def safe_wait_s(hardware):
    """How long to wait for good settings: for ever on a board, SENSING_SAFE_SECONDS (0) on a laptop."""
    if hardware.has_buses():
        return None
    try:
        return float(_getenv("SENSING_SAFE_SECONDS") or 0)
    except ValueError:
        return 0


def safe_mode(path, error, hardware, wait_s, log=print, sleep=time.sleep, client_factory=None, wdt=None):
    """Show and publish why the config is invalid; wait for settings that fix it. True once fixed."""
    settings = app.settings_module()
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


def main(hardware=None):
    hardware = hardware or board.on_this_port()
    path = config_path()
    while True:
        try:
            config = app.load_config(path)
            break
        except ValueError as e:
            if not isinstance(e, app.settings_module().ConfigError):  # still imported: it raised
                raise
            if not safe_mode(path, e, hardware, safe_wait_s(hardware)):
                return 1
    join_wifi(config)
    left = app.run(config, hardware=hardware, config_file=path)
    if left:
        print("sensing: %d reading(s) still queued, sent at the next start" % left)
    return 0


if __name__ == "__main__":
    main()
