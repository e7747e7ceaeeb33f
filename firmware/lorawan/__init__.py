# LoRaWAN through an AT-command modem on a UART: OTAA join, uplinks of the codec's compact form, downlinks.
#
#     from machine import UART
#     import lorawan
#     radio = lorawan.make("wio_e5", UART(1, 9600, tx=17, rx=16))
#     radio.configure(dev_eui, app_eui, app_key, region="EU868", data_rate=5)
#     radio.join_with_retries(attempts=3)
#     downlink = lorawan.send_reading(radio, seq, {"co2": 612, "temperature": 21.7})
#
# Every failure is a modem.ModemError with a `kind` (timeout, join_failed, not_joined, busy, duty_cycle,
# no_ack, too_long, refused) and a one-sentence message for the log.

try:
    from . import modem
except ImportError:  # copied flat onto a board
    import modem

ModemError = modem.ModemError

# The port our compact readings go out on; the hub reads this port as the compact form and any other as
# CayenneLPP (hub setting SENSING_LORAWAN_COMPACT_PORT).
COMPACT_PORT = 10
# The port of the device's status (lora_status.py; hub setting SENSING_LORAWAN_STATUS_PORT).
STATUS_PORT = 12

# Modem kind -> (module, class). Imported only when asked for, so a board loads one driver.
DRIVERS = {"wio_e5": ("wio_e5", "WioE5"), "rak3172": ("rak3172", "Rak3172")}


def make(kind, uart, clock=None, **timeouts):
    """The driver for modem `kind` ('wio_e5' or 'rak3172') on `uart`."""
    if kind not in DRIVERS:
        raise ValueError("unknown LoRaWAN modem '%s' (use one of %s)" % (kind, ", ".join(sorted(DRIVERS))))
    module_name, class_name = DRIVERS[kind]
    try:
        module = __import__("firmware.lorawan." + module_name, None, None, [class_name])
    except ImportError:  # copied flat onto a board: lorawan/ sits at the root
        module = __import__("lorawan." + module_name, None, None, [class_name])
    return getattr(module, class_name)(uart, clock, **timeouts)


def send_reading(radio, seq, values, port=COMPACT_PORT, confirmed=False):
    """Encode one reading in the compact form and send it; return a downlink (port, bytes) or None."""
    try:
        from firmware import encode
    except ImportError:
        import encode
    return radio.send(port, encode.encode_compact(seq, values), confirmed)
