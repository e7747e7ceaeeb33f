# Asking a time server the time (SNTP), and setting the board's real-time clock to it: used when the clock
# syncs, every few hours, so clock.py and app.py load this module for it and let it go afterwards.
# MicroPython common subset.

import struct

NTP_TO_UNIX = 2208988800    # seconds from 1900 (NTP's epoch) to 1970


def sntp(host, port=123, timeout=2):
    """Ask an NTP server the time (one SNTP request). Unix seconds; OSError with one sentence on failure."""
    import socket
    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    except OSError as e:
        raise OSError("cannot resolve the time server %s: %s" % (host, e))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        query = bytearray(48)
        query[0] = 0x1B  # version 3, client
        s.sendto(query, addr)
        answer = s.recv(48)
    except OSError as e:
        raise OSError("no answer from the time server %s:%d: %s" % (host, port, e))
    finally:
        s.close()
    if len(answer) < 48 or answer[1] == 0:  # stratum 0: the server says not to use it ("kiss of death")
        raise OSError("the time server %s:%d gave no usable time" % (host, port))
    seconds = struct.unpack(">I", answer[40:44])[0]
    if seconds < 0x80000000:  # NTP's 32-bit seconds wrap in 2036: small values are the next era
        seconds += 0x100000000
    return seconds - NTP_TO_UNIX


def civil(unix):
    """(year, month, day, weekday, hour, minute, second) of Unix seconds, in UTC; weekday 0 is Monday, as
    in time.localtime() and RTC.datetime(). Integer arithmetic (Howard Hinnant's civil_from_days), so the
    same on every port: a port's time.gmtime() counts from its own epoch."""
    days, s = divmod(unix, 86400)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    z = days + 719468         # days since 0000-03-01
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return (year, month, day, weekday, s // 3600, s % 3600 // 60, s % 60)


def set_rtc(rtc, unix):
    """Set a machine.RTC to Unix seconds, in UTC: (year, month, day, weekday, hour, minute, second,
    subseconds). Subseconds are 0: SNTP's answer is kept to the second."""
    y, m, d, wd, h, mi, s = civil(unix)
    rtc.datetime((y, m, d, wd, h, mi, s, 0))
