"""Paths the firmware tests share. The services they run (MicroPython, Mosquitto) come from tests/services.py."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
