"""LoRaWAN airtime: the compact form against CayenneLPP for the same full air reading, at DR0 and DR5 (EU868).

Bytes on the air and time on air by Semtech's formula (AN1200.13 / SX1276 datasheet 4.1.1.7): 125 kHz, coding
rate 4/5, 8 preamble symbols, explicit header, CRC on, low data rate optimisation at SF11 and SF12, and 13 bytes
of LoRaWAN frame around the application payload (MHDR 1, DevAddr 4, FCtrl 1, FCnt 2, FPort 1, MIC 4; no FOpts).
The CayenneLPP baseline is the same eight values at the resolution CayenneLPP's types give them.

    .venv/bin/python -m bench.lorawan_airtime
"""

import math

from firmware import codec

FULL_AIR = {"pm1": 12.3, "pm2_5": 20.5, "pm10": 35.1, "co2": 612, "temperature": 21.7, "humidity": 63.5,
            "pressure": 1008.4, "battery_voltage": 3.71}
LORAWAN_OVERHEAD = 13
DATA_RATES = {"DR0": 12, "DR5": 7}  # EU868 data rate -> spreading factor, both at 125 kHz
# CayenneLPP has no particulate or CO2 type: PM and the battery go as analog inputs (0.01, signed), CO2 as
# illuminance (1, unsigned), as devices that send CayenneLPP commonly do.
CAYENNE = [  # (channel, quantity, type byte, bytes, scale)
    (1, "pm1", 0x02, 2, 100), (2, "pm2_5", 0x02, 2, 100), (3, "pm10", 0x02, 2, 100), (4, "co2", 0x65, 2, 1),
    (5, "temperature", 0x67, 2, 10), (6, "humidity", 0x68, 1, 2), (7, "pressure", 0x73, 2, 10),
    (8, "battery_voltage", 0x02, 2, 100),
]


def airtime_ms(payload_bytes: int, sf: int, bandwidth_hz: int = 125_000, preamble: int = 8, coding_rate: int = 1,
               crc: bool = True, explicit_header: bool = True) -> float:
    """Time on air of one LoRa packet of `payload_bytes` (the whole PHY payload), in milliseconds."""
    symbol_ms = (2**sf) / bandwidth_hz * 1000
    low_rate = 1 if sf >= 11 and bandwidth_hz == 125_000 else 0
    bits = 8 * payload_bytes - 4 * sf + 28 + 16 * crc - 20 * (not explicit_header)
    payload_symbols = 8 + max(math.ceil(bits / (4 * (sf - 2 * low_rate))) * (coding_rate + 4), 0)
    return (preamble + 4.25 + payload_symbols) * symbol_ms


def encode_cayenne(values: dict[str, float]) -> bytes:
    out = bytearray()
    for channel, name, kind, size, scale in CAYENNE:
        out += bytes([channel, kind]) + round(values[name] * scale).to_bytes(size, "big", signed=kind == 0x67)
    return bytes(out)


def main() -> None:
    # The formula against AN1200.13's worked example: 13 bytes at SF9 take 164.864 ms.
    assert round(airtime_ms(13, 9), 3) == 164.864
    compact = codec.encode_compact(17, FULL_AIR)
    cayenne = encode_cayenne(FULL_AIR)
    decoded, skipped = codec.decode_cayenne(cayenne, {c: name for c, name, *_ in CAYENNE})
    assert decoded["v"] == FULL_AIR and not skipped, "the CayenneLPP baseline must carry the same values"
    print("Full air reading (pm1, pm2_5, pm10, co2, temperature, humidity, pressure, battery_voltage), EU868 125 kHz")
    print(f"{'':24}{'payload':>9}{'on air':>8}{'DR0 (SF12)':>14}{'DR5 (SF7)':>13}")
    rows = {"compact form": compact, "CayenneLPP": cayenne}
    times = {}
    for label, payload in rows.items():
        on_air = len(payload) + LORAWAN_OVERHEAD
        times[label] = {dr: airtime_ms(on_air, sf) for dr, sf in DATA_RATES.items()}
        dr0_ms, dr5_ms = times[label]["DR0"], times[label]["DR5"]
        print(f"{label:24}{len(payload):>7} B{on_air:>6} B{dr0_ms:>11.1f} ms{dr5_ms:>10.1f} ms")
    byte_ratio = len(compact) / len(cayenne)
    dr0 = times["compact form"]["DR0"] / times["CayenneLPP"]["DR0"]
    dr5 = times["compact form"]["DR5"] / times["CayenneLPP"]["DR5"]
    print(f"{'compact / CayenneLPP':24}{byte_ratio:>9.2f}{'':8}{dr0:>14.2f}{dr5:>13.2f}")
    print(f"target: compact payload at most 51 B (DR0-DR2 limit) and at most 0.6 x CayenneLPP: "
          f"{'met' if len(compact) <= 51 and byte_ratio <= 0.6 else 'NOT met'}")


if __name__ == "__main__":
    main()
