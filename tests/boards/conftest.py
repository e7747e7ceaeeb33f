"""The `simulated_board` fixture: a MicroPython board on a pseudo-terminal (see tests/boards/simulator.py).

Tests outside tests/boards get it by importing it into their own conftest.py:

    from tests.boards.conftest import simulated_board  # noqa: F401
"""

import pytest

from tests.boards.simulator import SimulatedBoard


@pytest.fixture
def simulated_board(request, micropython, tmp_path):
    """A Raspberry Pi Pico W running MicroPython at the serial port `.port`; its flash is the empty folder `.root`.
Sent to BOOTSEL, its drive appears in tmp_path / "media".

    Another board by indirect parametrisation:
    @pytest.mark.parametrize("simulated_board", ["ESP32_GENERIC"], indirect=True)
    """
    board = SimulatedBoard(tmp_path / "flash", micropython, board=getattr(request, "param", "RPI_PICO_W"),
                           media=tmp_path / "media")  # fmt: skip
    board.start()
    yield board
    board.stop()
