"""Noticing boards as they are plugged in, for `sensing workshop run`.

A port source says which serial ports have something at them now; a Watcher, asked again and again, says which
of them appeared since it last looked. A port that goes away and comes back is new again: a board was
unplugged and the next one plugged into the same cable.

    watcher = Watcher(usb_serial_ports)          # pyserial's list of the computer's USB serial ports
    watcher = Watcher(linked_ports(Path("/dev/serial/by-id")))   # Linux: one link per plugged-in device
    watcher = Watcher(fixed_ports(["/dev/ttyACM0", "/dev/ttyACM1"]))
    for port in watcher.new():
        ...
"""

import os
from collections.abc import Callable
from pathlib import Path

PortSource = Callable[[], list[str]]


def usb_serial_ports() -> list[str]:
    """The serial ports that are USB devices (a board's USB serial: /dev/ttyACM0, /dev/ttyUSB0, COM3, ...).

    Built-in serial ports (/dev/ttyS0) have no USB vendor id and are left out: no board is ever at them."""
    from serial.tools import list_ports

    return sorted(port.device for port in list_ports.comports() if port.vid is not None)


def linked_ports(folder: Path) -> PortSource:
    """The devices the links in `folder` point to, as Linux's /dev/serial/by-id holds one link per plugged-in
    USB serial device, named after the device (so the names say which board is which)."""

    def ports() -> list[str]:
        try:
            links = sorted(folder.iterdir())
        except FileNotFoundError:  # /dev/serial/by-id exists only while a USB serial device is plugged in
            return []
        targets = (os.path.realpath(link) for link in links)
        return list(dict.fromkeys(target for target in targets if os.path.exists(target)))

    return ports


def fixed_ports(ports: list[str]) -> PortSource:
    """The ports named, each present while its device exists."""
    return lambda: [port for port in ports if os.path.exists(port)]


class Watcher:
    """The ports that appeared since the last look (at the first look: every port there is)."""

    def __init__(self, source: PortSource):
        self.source = source
        self.present: set[str] = set()

    def new(self) -> list[str]:
        now = self.source()
        appeared = [port for port in now if port not in self.present]
        self.present = set(now)
        return appeared
