# main.py's start, in a module loaded for it and let go before the loop: the config, read and checked (waiting
# in safe mode, safemode.py, for settings that fix an invalid one), and the WiFi network joined. A config that
# cannot be used does not crash the board. MicroPython common subset.

import sys
import time

try:
    from . import app
    from .buffer import load, release
except ImportError:  # copied flat onto a board
    import app
    from buffer import load, release

DEFAULT_CONFIG = "/config.json"


def prepare(hardware=None):
    """The config, checked, and WiFi joined: (config, its path); None when safe mode stopped waiting (only on
    a laptop)."""
    board = load("board")
    hardware = hardware or board.on_this_port()
    path = config_path()
    while True:
        try:
            config = app.load_config(path)
            break
        except ValueError as e:
            if not isinstance(e, load("config").ConfigError):  # still imported: it raised
                raise
            safe = load("safemode")  # only while the config is invalid
            fixed = safe.safe_mode(path, e, hardware, safe.safe_wait_s(hardware))
            release(safe)
            safe = None
            if not fixed:
                return None
    join_wifi(config)
    release(board)
    return config, path


def getenv(name):
    try:
        import os
        return os.getenv(name)
    except (ImportError, AttributeError):  # boards have no environment
        return None


def config_path():
    if len(sys.argv) > 1 and sys.argv[1]:
        return sys.argv[1]
    return getenv("SENSING_CONFIG") or DEFAULT_CONFIG


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
