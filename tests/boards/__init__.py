"""Simulated boards: the real MicroPython unix port behind a serial port, for tests of the `sensing device` commands."""
