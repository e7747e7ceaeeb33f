# The device's settings: /config.json, validated at boot, and changes that arrive over the air.
# MicroPython common subset. Each check raises ConfigError with one sentence a resident can act on
# ("interval must be at least 5 seconds"), so the device can show it in its status instead of crashing.
#
#   config = load("/config.json")                 # the defaults filled in; ConfigError if unusable
#   changed = update(given, {"interval": 300})    # only RUNTIME keys; the new given settings, checked
#   save("/config.json", changed)                 # temp file, then rename: old or new after a power cut
#   changes = decode_downlink(b"\x01\x01\x00\x01\x2c")   # {"interval": 300}: the LoRaWAN settings form

import json

try:
    from .buffer import SEGMENT, Files, write_atomic  # SEGMENT: the buffer's segment
except ImportError:  # copied flat onto a board
    from buffer import SEGMENT, Files, write_atomic

DEFAULTS = {
    "broker_host": "127.0.0.1",
    "broker_port": 1883,     # 8883 is the usual port for MQTT over TLS
    "broker_tls": False,
    "broker_ca": "",         # with broker_tls: the CA certificate (PEM or DER) on the device that signed the broker's
    "interval": 60,          # seconds between readings
    "cycles": 0,             # readings to take before returning; 0 runs forever
    "drain_seconds": 0,      # after the last cycle, keep retrying the buffer this long
    "state_dir": "/",        # where the seq counter, the buffer and the clock's anchors live
    "seed": 1,               # the emulated sensor's seed
    "keepalive": 60,
    "timeout": 5,            # seconds to wait for the broker (CONNACK, PUBACK) and the time server
    "backoff_initial": 1,    # seconds before the first retry after a failure, doubled each failure
    "backoff_max": 300,
    "backoff_jitter": 0.5,   # each wait is shortened by a random part of up to this fraction
    "batch": 20,             # readings per MQTT message at most
    "batch_bytes": 8192,     # bytes per MQTT message at most (the hub takes up to 65536)
    "buffer_bytes": 65536,   # flash kept for readings not yet sent; the oldest go when it is full
    "ntp_host": "pool.ntp.org",
    "ntp_port": 123,
    "ntp_every": 21600,      # seconds between asking NTP again, once it has answered
    "board": "",             # the board's pin map: /board.json, or firmware/boards/<board>.json
    "sensors": "auto",       # "auto": the chips found on the board's buses; "emulated": no hardware
    "uart_sensor": "",       # "sds011" or "pms5003": a UART sensor cannot be found by scanning
    "transport": "mqtt",     # "mqtt" (WiFi) or "lorawan" (an AT modem on the board's modem UART)
    "lora_modem": "wio_e5",
    "lora_dev_eui": "",
    "lora_app_eui": "0000000000000000",
    "lora_app_key": "",
    "lora_region": "EU868",
    "lora_data_rate": 5,
    "lora_port": 10,         # the hub reads this port as the compact form
    "lora_confirmed": False,
    "led": True,             # the status LED's blink patterns; false keeps it dark
    "sleep": "none",         # between readings: "none", "light" or "deep"
    "watchdog_ms": 8000,     # the board restarts if the loop does not feed it this long; 0: no watchdog
}
REQUIRED = ("device_id", "secret")
OPTIONAL = ("wifi_ssid", "wifi_password")  # read by main.py; no default
# What the hub may change over the air (the config topic, a LoRaWAN downlink): nothing that could cut the
# device off from the hub if it were wrong.
RUNTIME = ("interval", "batch", "led", "sleep", "lora_confirmed")

BOARDS = ("ESP32_GENERIC", "ESP32_GENERIC_C3", "ESP32_GENERIC_S3", "RPI_PICO2_W", "RPI_PICO_W")
MODEMS = ("rak3172", "wio_e5")
REGIONS = ("AS923", "AU915", "EU868", "IN865", "KR920", "US915")  # the regions both modems know
MIN_INTERVAL = 5          # flash wear (a write per reading) and the radio's duty cycle
MAX_INTERVAL = 86400
HUB_MAX_MESSAGE = 65536
WATCHDOG_MAX_MS = 8388    # the longest watchdog rp2 allows; ESP32 allows more
CONFIG_PORT = 11          # the LoRaWAN port of settings downlinks (see decode_downlink)


class ConfigError(ValueError):
    pass


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _number(c, key, low=None, high=None, integer=False):
    value = c[key]
    if not (_is_int(value) if integer else _is_number(value)):
        raise ConfigError("%s must be %s, not %s" % (key, "a whole number" if integer else "a number",
                                                     json.dumps(value)))
    if low is not None and high is not None and not low <= value <= high:
        raise ConfigError("%s must be between %s and %s" % (key, low, high))
    if low is not None and value < low:
        raise ConfigError("%s must be at least %s" % (key, low))


def _text(c, key, longest=None):
    value = c[key]
    if not isinstance(value, str):
        raise ConfigError("%s must be text, not %s" % (key, json.dumps(value)))
    if longest is not None and len(value) > longest:
        raise ConfigError("%s can't be longer than %d characters" % (key, longest))


def _one_of(c, key, choices, what):
    if c[key] not in choices:
        raise ConfigError("unknown %s %s (use one of %s)" % (what, json.dumps(c[key]), ", ".join(choices)))


def _flag(c, key):
    if not isinstance(c[key], bool):
        raise ConfigError("%s must be true or false, not %s" % (key, json.dumps(c[key])))


def _hex(c, key, digits):
    value = c[key]
    if not isinstance(value, str) or len(value) != digits:
        got = len(value) if isinstance(value, str) else json.dumps(value)
        raise ConfigError("%s must be %d hex digits, not %s" % (key, digits, got))
    for ch in value:
        if ch not in "0123456789abcdefABCDEF":
            raise ConfigError("%s may hold only hex digits (0-9, A-F), not '%s'" % (key, ch))


def check_identity(c):
    for key in REQUIRED:
        if not c.get(key):
            raise ConfigError("the config has no '%s'" % key)
        _text(c, key, 64)
    for ch in c["device_id"]:
        if not (ch.isalpha() or ch.isdigit() or ch in "-_"):
            raise ConfigError("device_id may hold only letters, digits, '-' and '_', not '%s'" % ch)


def check_loop(c):
    _number(c, "cycles", 0, integer=True)
    _number(c, "interval", 0)
    # A bounded run (a trial on a laptop, a test) may go faster: it ends before the flash wears out.
    if not c["cycles"] and c["interval"] < MIN_INTERVAL:
        raise ConfigError("interval must be at least %d seconds" % MIN_INTERVAL)
    if c["interval"] > MAX_INTERVAL:
        raise ConfigError("interval can't be more than %d seconds (a day)" % MAX_INTERVAL)
    _number(c, "drain_seconds", 0)
    _number(c, "seed", 0, integer=True)
    _text(c, "state_dir")
    _number(c, "batch", 1, 1000, integer=True)
    _number(c, "batch_bytes", 512, HUB_MAX_MESSAGE, integer=True)
    _number(c, "buffer_bytes", 2 * SEGMENT, integer=True)
    _one_of(c, "sleep", ("none", "light", "deep"), "sleep mode")
    _flag(c, "led")
    if c["watchdog_ms"] != 0:
        _number(c, "watchdog_ms", 1000, WATCHDOG_MAX_MS, integer=True)


def check_network(c):
    _text(c, "broker_host", 253)
    _number(c, "broker_port", 1, 65535, integer=True)
    _flag(c, "broker_tls")
    _text(c, "broker_ca", 255)
    # TLS that checks nothing would look safe and not be: without a CA to check the broker against, refuse.
    # Whether the file is there is checked when connecting: this check also runs on the laptop writing it.
    if c["broker_tls"] and not c["broker_ca"]:
        raise ConfigError("broker_tls needs broker_ca: the path on the device of the CA certificate that signed "
                          "the broker's")
    if c["broker_ca"] and not c["broker_tls"]:
        raise ConfigError("broker_ca is set but broker_tls is false: set broker_tls to true to use TLS")
    _number(c, "keepalive", 0, 65535, integer=True)
    _number(c, "timeout", 0.05, 60)
    _number(c, "backoff_initial", 0)
    _number(c, "backoff_max", c["backoff_initial"])
    _number(c, "backoff_jitter", 0, 1)
    _text(c, "ntp_host", 253)
    _number(c, "ntp_port", 1, 65535, integer=True)
    _number(c, "ntp_every", 1, integer=True)
    if "wifi_ssid" in c:
        _text(c, "wifi_ssid", 32)
    if c.get("wifi_password"):
        _text(c, "wifi_password", 63)
        if len(c["wifi_password"]) < 8:
            raise ConfigError("wifi_password must be at least 8 characters (WPA2), or empty for an open network")


def check_hardware(c):
    if c["board"] != "":
        _one_of(c, "board", BOARDS, "board")
    _one_of(c, "sensors", ("auto", "emulated"), "sensors setting")
    if c["uart_sensor"] != "":
        _one_of(c, "uart_sensor", ("pms5003", "sds011"), "UART sensor")
    _one_of(c, "transport", ("lorawan", "mqtt"), "transport")
    _flag(c, "lora_confirmed")
    if c["transport"] != "lorawan":
        return
    _one_of(c, "lora_modem", MODEMS, "LoRaWAN modem")
    _hex(c, "lora_dev_eui", 16)
    _hex(c, "lora_app_eui", 16)
    _hex(c, "lora_app_key", 32)
    _one_of(c, "lora_region", REGIONS, "LoRaWAN region")
    _number(c, "lora_data_rate", 0, 5, integer=True)
    _number(c, "lora_port", 1, 223, integer=True)
    if c["lora_port"] == CONFIG_PORT:
        raise ConfigError("lora_port %d is the settings downlinks' port: choose another" % CONFIG_PORT)


def make_config(given):
    """The defaults, overridden by `given`, checked. Raises ConfigError with one sentence."""
    if not isinstance(given, dict):
        raise ConfigError("the config must be a JSON object of settings")
    for key in given:
        if key not in DEFAULTS and key not in REQUIRED and key not in OPTIONAL:
            raise ConfigError("unknown setting '%s'" % key)
    config = dict(DEFAULTS)
    config.update(given)
    check_identity(config)
    check_loop(config)
    check_network(config)
    check_hardware(config)
    return config


def read(path, files=None):
    """The settings in the file at `path`, as given (no defaults). Raises ConfigError."""
    files = files or Files()
    try:
        f = files.open(path, "r")
        try:
            text = f.read()
        finally:
            f.close()
    except OSError:
        raise ConfigError("cannot read the config file %s" % path)
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError("the config file %s is not valid JSON" % path)


def load(path, files=None):
    return make_config(read(path, files))


def update(given, changes):
    """The settings `given` with `changes` applied, checked whole. Raises ConfigError when a change is not
    allowed over the air or leaves the settings invalid; `given` is left as it was."""
    if not isinstance(changes, dict) or not changes:
        raise ConfigError("a settings change must be a JSON object with at least one setting")
    for key in changes:
        if key not in RUNTIME:
            raise ConfigError("%s can't be changed over the air (only %s)" % (key, ", ".join(RUNTIME)))
    out = dict(given)
    out.update(changes)
    make_config(out)
    return out


def apply(device, changes):
    """A settings change for a running app.Device (a dict, or a ValueError for one that could not be read):
    checked against the whole config, kept in the config file, used; or refused, with the reason in the
    status message and the log."""
    if isinstance(changes, ValueError):  # a ConfigError, or the config topic's unreadable JSON
        return _refuse(device, str(changes))
    try:
        given = read(device.config_file, device.files) if device.config_file else dict(device.config)
        given = update(given, changes)
        if device.config_file:
            save(device.config_file, given, device.files)
    except ConfigError as e:
        return _refuse(device, str(e))
    device.config.update(changes)
    device.power.mode = device.config["sleep"]
    device.led.enable(device.config["led"])
    device.status.message = ""
    device.log("sensing: settings changed: %s" % ", ".join(
        ["%s %s" % (k, json.dumps(changes[k])) for k in sorted(changes)]))


def _refuse(device, why):
    device.status.message = "config refused: %s" % why
    device.log("sensing: %s" % device.status.message)


def save(path, given, files=None):
    """Write the settings (as given, without defaults) to `path`: the old file or the new after a power cut."""
    write_atomic(files or Files(), path, json.dumps(given).encode())


# The settings downlink (LoRaWAN port CONFIG_PORT): byte 0 is the format version, 1; then settings, each
# one byte naming it and its value in the width below, big-endian.
DOWNLINK_VERSION = 1
DOWNLINK_FIELDS = {
    1: ("interval", 3),         # seconds
    2: ("batch", 1),
    3: ("led", 1),              # 0 off, 1 on
    4: ("sleep", 1),            # 0 none, 1 light, 2 deep
    5: ("lora_confirmed", 1),   # 0 unconfirmed, 1 confirmed
}
SLEEP_CODES = ("none", "light", "deep")


def decode_downlink(data):
    """{setting: value} from a settings downlink. Raises ConfigError with one sentence."""
    if not data or data[0] != DOWNLINK_VERSION:
        raise ConfigError("a settings downlink starts with version %d" % DOWNLINK_VERSION)
    changes = {}
    i = 1
    while i < len(data):
        field = DOWNLINK_FIELDS.get(data[i])
        if field is None:
            raise ConfigError("a settings downlink names setting %d, which this firmware does not know" % data[i])
        name, width = field
        if i + 1 + width > len(data):
            raise ConfigError("a settings downlink ends inside %s" % name)
        value = 0
        for b in data[i + 1:i + 1 + width]:
            value = (value << 8) | b
        i += 1 + width
        if name in ("led", "lora_confirmed"):
            if value > 1:
                raise ConfigError("%s in a settings downlink must be 0 or 1, not %d" % (name, value))
            value = value == 1
        elif name == "sleep":
            if value >= len(SLEEP_CODES):
                raise ConfigError("sleep in a settings downlink must be 0, 1 or 2, not %d" % value)
            value = SLEEP_CODES[value]
        changes[name] = value
    if not changes:
        raise ConfigError("a settings downlink holds no setting")
    return changes
