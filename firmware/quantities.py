# The quantity registry: every measured quantity named once.
# Read by the firmware (to encode), the hub (to validate and decode), the exports and the docs.
# MicroPython-compatible: plain dicts and tuples only.
#
# Each entry: unit, valid range (inclusive), compact id (one byte on the air), scale (the compact form
# carries round(value * scale) as an integer) and a short description.
# bits: the width of that integer in the compact form, which sends round(value * scale) - round(min * scale)
# unsigned, so `bits` must hold (max - min) * scale. Changing a width or scale changes the wire format: bump
# COMPACT_VERSION (encode.py).

QUANTITIES = {
    "pm1": {"unit": "µg/m³", "min": 0.0, "max": 1000.0, "id": 1, "scale": 10, "bits": 14,
            "label": "Particulate matter up to 1 µm"},
    "pm2_5": {"unit": "µg/m³", "min": 0.0, "max": 1000.0, "id": 2, "scale": 10, "bits": 14,
              "label": "Particulate matter up to 2.5 µm"},
    "pm10": {"unit": "µg/m³", "min": 0.0, "max": 2000.0, "id": 3, "scale": 10, "bits": 15,
             "label": "Particulate matter up to 10 µm"},
    "co2": {"unit": "ppm", "min": 0.0, "max": 40000.0, "id": 4, "scale": 1, "bits": 16,
            "label": "Carbon dioxide"},
    "temperature": {"unit": "°C", "min": -40.0, "max": 85.0, "id": 5, "scale": 10, "bits": 11,
                    "label": "Air temperature"},
    "humidity": {"unit": "%", "min": 0.0, "max": 100.0, "id": 6, "scale": 2, "bits": 8,
                 "label": "Relative humidity"},
    "pressure": {"unit": "hPa", "min": 300.0, "max": 1100.0, "id": 7, "scale": 10, "bits": 13,
                 "label": "Air pressure"},
    "surface_temperature": {"unit": "°C", "min": -40.0, "max": 85.0, "id": 8, "scale": 10, "bits": 11,
                            "label": "Wall surface temperature"},
    "dew_point": {"unit": "°C", "min": -60.0, "max": 85.0, "id": 9, "scale": 10, "bits": 11,
                  "label": "Dew point"},
    "surface_humidity": {"unit": "%", "min": 0.0, "max": 100.0, "id": 10, "scale": 2, "bits": 8,
                         "label": "Relative humidity at the wall surface"},
    "condensation_risk": {"unit": "level", "min": 0.0, "max": 3.0, "id": 11, "scale": 1, "bits": 2,
                          "label": "Condensation risk (0 none, 1 low, 2 medium, 3 high)"},
    "battery_voltage": {"unit": "V", "min": 0.0, "max": 6.0, "id": 12, "scale": 100, "bits": 10,
                        "label": "Battery voltage"},
}

BY_ID = {}
for _name in QUANTITIES:
    BY_ID[QUANTITIES[_name]["id"]] = _name


def check(name, value):
    """Return None if `value` is a valid reading of quantity `name`, else one sentence saying why not."""
    q = QUANTITIES.get(name)
    if q is None:
        return "unknown quantity '%s'" % name
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "%s must be a number, not %r" % (name, value)
    if value != value:  # NaN
        return "%s is not a number (NaN)" % name
    if value < q["min"] or value > q["max"]:
        return "%s %s %s is outside the valid range %s to %s %s" % (
            name, value, q["unit"], q["min"], q["max"], q["unit"])
    return None
