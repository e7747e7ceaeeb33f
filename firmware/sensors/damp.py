# Derived damp quantities: dew point, relative humidity at the wall surface, condensation risk.
# Pure functions of room temperature (°C), room relative humidity (%) and wall-surface temperature (°C).
#
# Dew point by the Magnus formula with Sensirion's constants for water (valid -45..60 °C):
#   gamma = ln(RH / 100) + beta * T / (lambda + T)
#   Td    = lambda * gamma / (beta - gamma)          beta = 17.62, lambda = 243.12 °C
# The surface's relative humidity is the room air's vapour pressure over the saturation pressure at the
# surface temperature; with the same Magnus saturation curve E(t) = 6.112 hPa * exp(beta * t / (lambda + t)):
#   RH_surface = 100 * E(Td) / E(T_surface)          capped at 100 %: at or below the dew point water condenses
# Condensation risk, from the surface relative humidity (the mould criterion of ISO 13788 and BS 5250 is a
# surface RH of 80 %; liquid water forms at 100 %):
#   0 none    RH_surface < 70 %
#   1 low     70 % <= RH_surface < 80 %   (approaching the mould threshold)
#   2 medium  80 % <= RH_surface < 90 %   (mould can grow if this lasts days)
#   3 high    RH_surface >= 90 %          (at or near condensation on the wall)

import math

BETA = 17.62
LAMBDA = 243.12
RISK_THRESHOLDS = (70.0, 80.0, 90.0)


def dew_point(temperature, humidity):
    """Dew point in °C of air at `temperature` °C and `humidity` % relative humidity (0 < humidity <= 100)."""
    if humidity <= 0:
        raise ValueError("the dew point needs a relative humidity above 0 %")
    gamma = math.log(humidity / 100.0) + BETA * temperature / (LAMBDA + temperature)
    return LAMBDA * gamma / (BETA - gamma)


def surface_humidity(dew, surface_temperature):
    """Relative humidity in % at a surface at `surface_temperature` °C, of air whose dew point is `dew` °C."""
    ratio = math.exp(BETA * dew / (LAMBDA + dew) - BETA * surface_temperature / (LAMBDA + surface_temperature))
    return min(100.0, 100.0 * ratio)


def condensation_risk(surface_rh):
    """Risk level 0 (none) to 3 (high) for a surface relative humidity in %."""
    level = 0
    for threshold in RISK_THRESHOLDS:
        if surface_rh >= threshold:
            level += 1
    return level


def derive(values):
    """{dew_point, surface_humidity, condensation_risk} from a reading holding temperature, humidity and
    surface_temperature; {} when one of them is missing (a faulty sensor this cycle, or not a damp kit)."""
    t = values.get("temperature")
    rh = values.get("humidity")
    ts = values.get("surface_temperature")
    if t is None or rh is None or ts is None or rh <= 0:
        return {}
    dew = dew_point(t, rh)
    surface_rh = surface_humidity(dew, ts)
    return {"dew_point": round(dew * 100) / 100,
            "surface_humidity": round(surface_rh * 10) / 10,
            "condensation_risk": condensation_risk(surface_rh)}
