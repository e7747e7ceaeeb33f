# The file at the board's root: load the config, join WiFi if configured, run the app.
#   board:      /main.py runs at boot with /config.json
#   unix port:  MICROPYPATH=<repo> micropython -m firmware.main path/to/config.json
#               (or SENSING_CONFIG=path/to/config.json)
#
# The start's work (reading the config, safe mode while it is invalid, WiFi) is in prepare.py, loaded for it
# and let go before the loop: this file stays in the heap while the loop runs (a board runs it as source), so it
# holds no more than that.

try:
    from . import app
    from .buffer import load, release
except (ImportError, KeyError):  # flat on a board; MicroPython raises KeyError in __main__
    import app
    from buffer import load, release


def main(hardware=None):
    prepare = load("prepare")
    ready = prepare.prepare(hardware)
    release(prepare)
    prepare = None
    if ready is None:
        return 1
    left = app.run(ready[0], hardware=hardware, config_file=ready[1])
    if left:
        print("sensing: %d reading(s) still queued, sent at the next start" % left)
    return 0


if __name__ == "__main__":
    main()
