"""Finding the tools the firmware tests run: a missing one skips, except under CI=true, where it fails."""

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def require(path, what):
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing, and CI=true requires it")
    pytest.skip(f"{what} is missing (install the dev extras: make test)")


def find_micropython():
    beside = Path(sys.executable).parent / "micropython"  # the venv's bin, not the resolved base interpreter's
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


def micropython_or_skip():
    return require(find_micropython(), "the MicroPython unix port (`micropython`)")
