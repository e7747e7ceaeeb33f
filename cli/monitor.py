"""`sensing device monitor`: what the board prints, line by line, as it prints it; readings in plain words.

The board keeps running: the port is only listened to, nothing is interrupted (unless --restart asks for a
fresh start, to see the firmware from its first line). Ctrl-C stops.
"""

import json
import math
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal

import serial
import typer

from cli.app import abort, console
from cli.board import why_not_open
from firmware.quantities import QUANTITIES

BAUD = 115200
POLL = 0.1  # seconds a read waits for the board, so Ctrl-C and --seconds are noticed quickly
PROMPT_WAIT = 5  # seconds for a board to show its >>> prompt after Ctrl-C, Ctrl-B
PROBE, PROBE_ANSWER = b'print("sensing", 6 * 7)\r', b"sensing 42"  # echoed as typed; answered as computed


def quantity_text(name: str, value: float) -> str:
    """21.4 °C, 63 % RH, 612 ppm: as many decimals as the quantity is measured to, its unit from the registry."""
    q = QUANTITIES.get(name)
    if q is None:
        return f"{name} {value:g}"
    decimals = max(0, math.floor(math.log10(q["scale"])))
    shown = Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)  # 54.5 -> 55
    unit = q["unit"] + (" RH" if q["label"].startswith("Relative humidity") else "")
    return f"{shown} {unit}"


def reading_text(values: dict[str, float]) -> str:
    """The values of one reading in the registry's order: "21.4 °C, 63 % RH"."""
    order = [name for name in QUANTITIES if name in values] + sorted(set(values) - set(QUANTITIES))
    return ", ".join(quantity_text(name, values[name]) for name in order)


def shown(line: str) -> str:
    """A line as the monitor shows it: a reading record (the firmware's JSON form) in plain words, else as is."""
    if line.startswith("{") and '"v"' in line:
        try:
            record = json.loads(line)
            return f"reading {record['seq']}: {reading_text(record['v'])}"
        except (ValueError, KeyError, TypeError):
            pass
    return line


def open_console(port: str) -> serial.Serial:
    """The board's serial port, ours alone; a port that cannot be had ends the command with one sentence."""
    try:
        return serial.Serial(port, BAUD, timeout=POLL, exclusive=True)
    except serial.SerialException:
        abort(why_not_open(port))


class Lines:
    """Complete lines from a serial port, as they arrive; a partial line waits for its end."""

    def __init__(self, port: serial.Serial):
        self.port = port
        self.pending = b""

    def read(self) -> list[str]:
        """The lines completed since the last call (waits at most the port's timeout)."""
        self.pending += self.port.read(max(1, self.port.in_waiting))
        *done, self.pending = self.pending.split(b"\n")
        return [line.decode(errors="replace").rstrip("\r") for line in done]

    def until(self, ending: bytes, seconds: float) -> bool:
        """Read until `ending` arrives (kept as the pending text) or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while ending not in self.pending and time.monotonic() < deadline:
            self.pending += self.port.read(max(1, self.port.in_waiting))
        return ending in self.pending


def soft_reboot(port: serial.Serial, lines: Lines) -> bool:
    """Stop what the board runs and soft-reboot it from its friendly REPL, which runs /main.py again."""
    port.write(b"\r\x03\x03\x02")  # Ctrl-C twice (stop the program), Ctrl-B (the friendly REPL)
    if not lines.until(b"more information.", PROMPT_WAIT):  # Ctrl-B's banner ends 'Type "help()" for more ...'
        return False
    # That banner may be an older one: a board that has just started (after a deploy, say) prints its own
    # when its program ends, maybe before our keys arrive. So ask the REPL something whose answer is not its
    # echo: once the answer is there, the prompt after it is the one our keys brought.
    port.write(PROBE)
    if not lines.until(PROBE_ANSWER, PROMPT_WAIT):
        return False
    lines.pending = lines.pending[lines.pending.index(PROBE_ANSWER) :]
    if not lines.until(b">>> ", PROMPT_WAIT):
        return False
    lines.pending = b""
    port.write(b"\x04")
    return True


def follow(lines: Lines, seconds: float | None) -> Iterator[str]:
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        yield from lines.read()


def monitor(
    port: str = typer.Option(..., "--port", "-p", envvar="SENSING_PORT", help="The board's serial port."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this many seconds (default: at Ctrl-C)."),
    restart: bool = typer.Option(False, "--restart", help="Restart the board first, to see it from the start."),
) -> None:
    """Show what the board prints: its log lines and readings, live. Ctrl-C stops."""
    with open_console(port) as board_port:
        lines = Lines(board_port)
        if restart and not soft_reboot(board_port, lines):
            abort(f"The board at {port} did not stop its program to restart: press its reset button instead.")
        started = not restart  # the blank line a board prints as it restarts is left out
        try:
            for line in follow(lines, seconds):
                started = started or bool(line)
                if started:
                    console.print(shown(line), highlight=False, markup=False)
        except KeyboardInterrupt:
            pass
        except serial.SerialException:
            abort(f"The board at {port} went away: check its cable.")
