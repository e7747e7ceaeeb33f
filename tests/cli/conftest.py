"""Fixtures for the `sensing` command's tests. The simulated board is shared with tests/boards."""

from tests.boards.conftest import simulated_board  # noqa: F401
