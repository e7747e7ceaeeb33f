"""Fixtures for the `sensing` command's tests. The simulated board is shared with tests/boards."""

import pytest

from tests.boards.conftest import simulated_board  # noqa: F401


@pytest.fixture
def hub(running_hub):
    """The hub process the command talks to (tests/conftest.py's running_hub)."""
    return running_hub
