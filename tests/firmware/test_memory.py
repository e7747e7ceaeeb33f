"""The firmware's loop runs in a bounded heap: a regression guard, not a benchmark.

The scenario is bench/firmware_memory.py's, under the real MicroPython unix port with its heap capped by
`-X heapsize`: the real app and MQTT client against an in-memory broker that is down for cycles 300-359, so
cycle 361 sends a backlog of 61 readings in batches. It asserts what the firmware did, not how much heap it
used; the figures are the bench's (`.venv/bin/python -m bench.firmware_memory`).
"""

import json

from bench.firmware_memory import run
from tests.firmware.support import REPO

# The smallest heap the scenario runs in under the unix port, from .py files, is 104 KB (41 KB of it code;
# compiling the modules loaded at start, with the rest loaded, is what needs the most; from .mpy files 72 KB,
# and 51 KB on 32-bit: see the bench). The cap leaves room for that, and catches a loop that starts to hold on
# to its readings or build a backlog's messages whole, or code that stops being imported only when needed.
# Lower it as the firmware shrinks.
HEAP_KB = 112


def test_a_backlog_is_sent_in_batches_within_a_capped_heap(micropython):
    code, out = run(micropython, REPO, 420, "limit", HEAP_KB)
    assert code == 0, out
    result = json.loads(out)
    # 300 readings sent one by one; 61 kept while the broker was down, sent as 20 + 20 + 20 + 1 when it came
    # back; 59 more one by one; nothing left over.
    assert (result["messages"], result["batches"], result["left"]) == (363, 3, 0)


def test_a_heap_too_small_for_the_firmware_is_a_memory_error(micropython):
    # The guard above can fail: in 32 KB the firmware does not even load.
    code, out = run(micropython, REPO, 10, "limit", 32)
    assert code != 0
    assert "MemoryError" in out
