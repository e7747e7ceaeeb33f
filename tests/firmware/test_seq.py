"""Sequence numbers under the real MicroPython unix port: never given twice, across restarts and power cuts."""

import json
import subprocess

import pytest

from tests.firmware.support import REPO
from tests.firmware.test_buffer import HARNESS, run_micropython


# Three starts of 70 seqs each in blocks of 16, the power cut at every byte, open, rename and remove.
@pytest.mark.parametrize("flags, cuts", [([], 96), (["fat"], 128)], ids=["littlefs", "fat"])
def test_a_power_cut_at_any_step_never_gives_a_seq_twice(micropython, tmp_path, flags, cuts):
    out = subprocess.run([micropython, str(HARNESS), str(REPO), str(tmp_path), "seq", *flags],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    # Uncut: the first start reserved up to 80 and stopped without closing, so the second began at 80.
    assert json.loads(out.stdout) == {"cuts": cuts, "failures": [], "last": 219, "next": 220}


def test_the_flash_is_written_once_a_block(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, """
import json
from firmware.seq import SeqCounter

def on_flash():
    f = open("seq")
    text = f.read()
    f.close()
    return text

seqs = SeqCounter("seq")
handed = [seqs.next() for _ in range(5)]
reserved = on_flash()
lost_power = SeqCounter("seq")            # as if the power went now: the rest of the block is skipped
after_cut = lost_power.next()
more = [lost_power.next() for _ in range(64)]
lost_power.close()
print(json.dumps({"handed": handed, "reserved": reserved, "after_cut": after_cut, "more": [more[0], more[-1]],
                  "closed": on_flash(), "next_start": SeqCounter("seq").next()}))
""")
    assert result == {"handed": [0, 1, 2, 3, 4], "reserved": "64\n", "after_cut": 64, "more": [65, 128],
                      "closed": "129\n", "next_start": 129}
