# The file at the board's root: load the config, join WiFi if configured, run the app.
#   board:      /main.py runs at boot with /config.json
#   unix port:  MICROPYPATH=<repo> micropython -m firmware.main path/to/config.json
#               (or SENSING_CONFIG=path/to/config.json)
import sys
import time

try:
    from . import app
except (ImportError, KeyError):  # flat on a board; MicroPython raises KeyError in __main__
    import app

DEFAULT_CONFIG = "/config.json"


def config_path():
    if len(sys.argv) > 1 and sys.argv[1]:
        return sys.argv[1]
    try:
        import os
        return os.getenv("SENSING_CONFIG") or DEFAULT_CONFIG
    except (ImportError, AttributeError):  # boards have no environment
        return DEFAULT_CONFIG


def join_wifi(config, wait_s=30):
    ssid = config.get("wifi_ssid")
    if not ssid:
        return None
    import network
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, config.get("wifi_password", ""))
        for _ in range(wait_s * 10):
            if wlan.isconnected():
                break
            time.sleep(0.1)
    if not wlan.isconnected():
        print("sensing: could not join WiFi %s; readings are kept until it works" % ssid)
    return wlan


def main():
    try:
        config = app.load_config(config_path())
    except ValueError as e:
        print("sensing: %s" % e)
        return 1
    join_wifi(config)
    left = app.run(config)
    if left:
        print("sensing: %d reading(s) still queued, sent at the next start" % left)
    return 0


if __name__ == "__main__":
    main()
