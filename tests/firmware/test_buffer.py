"""The flash ring buffer under the real MicroPython unix port, power cuts included (tests/firmware/power_cut.py)."""

import json
import subprocess

import pytest

from tests.firmware.support import REPO

HARNESS = REPO / "tests" / "firmware" / "power_cut.py"


def run_micropython(micropython, tmp_path, code):
    """Run `code` under MicroPython with the repository importable; return what it printed, as JSON."""
    script = tmp_path / "script.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{code}")
    out = subprocess.run([micropython, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# Cut points: every byte of every record write and pointer update, every file open, rename and remove, in a
# scenario of 36 operations (28 appends, some rolling over to a new segment or dropping the oldest, and 8
# batches sent with part of each acknowledged). On FAT a replace is remove-then-rename: more cut points.
@pytest.mark.parametrize("flags, cuts", [([], 2139), (["fat"], 2163), (["ff"], 2139), (["fat", "ff"], 2163)],
                         ids=["littlefs", "fat", "littlefs-erased-ff", "fat-erased-ff"])
def test_a_power_cut_at_any_step_loses_at_most_the_record_being_written(micropython, tmp_path, flags, cuts):
    out = subprocess.run([micropython, str(HARNESS), str(REPO), str(tmp_path), "buffer", *flags],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["failures"] == []
    assert result["cuts"] == cuts
    assert result["ops"] == 36
    # The uncut run: 10 readings dropped when the buffer was full, and the last one left after the final send.
    assert result["dropped"] == 10
    assert result["held"] == ['{"seq": 27, "t": 1795860000, "v": {"temp']


BUFFER = """
import json
from firmware.buffer import Buffer

def rec(i, pad=0):
    return ('{"seq": %d, "t": 1795860000, "v": {"humidity": 50}}' % i + " " * pad).encode()

def seqs(records):
    return [json.loads(r)["seq"] for r in records]
"""


def test_records_come_back_oldest_first_in_batches_until_acknowledged(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, BUFFER + """
b = Buffer(".", 65536)
for i in range(7):
    b.append(rec(i))
first = seqs(b.peek(3, 10000))
b.ack(2)
reopened = Buffer(".", 65536)
size = len(rec(0))
print(json.dumps({"first": first, "len": len(b), "after_reboot": seqs(reopened.peek(100, 10000)),
                  "by_bytes": seqs(reopened.peek(100, 2 * size)), "one_too_big": seqs(reopened.peek(100, 1)),
                  "reopened_len": len(reopened)}))
""")
    assert result == {"first": [0, 1, 2], "len": 5, "after_reboot": [2, 3, 4, 5, 6], "by_bytes": [2, 3],
                      "one_too_big": [2], "reopened_len": 5}


def test_a_full_buffer_drops_the_oldest_segment_and_counts_it(micropython, tmp_path):
    # 4 segments of 512 bytes; each record 7 + 100 bytes, so 4 to a segment. The 17th record needs a fifth.
    result = run_micropython(micropython, tmp_path, BUFFER + """
import os
b = Buffer(".", 2048, 512)
for i in range(17):
    b.append(rec(i, 100 - len(rec(i))))
again = Buffer(".", 2048, 512)
print(json.dumps({"held": seqs(again.peek(100, 100000)), "dropped": [b.dropped, again.dropped],
                  "files": sorted([n for n in os.listdir(".") if n.startswith("buf")])}))
""")
    assert result == {"held": list(range(4, 17)), "dropped": [4, 4],
                      "files": ["buf-2.log", "buf-3.log", "buf-4.log", "buf-5.log", "buf.ptr"]}


def test_acknowledged_segments_are_deleted_and_the_pointer_is_small(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, BUFFER + """
import os
b = Buffer(".", 2048, 512)
for i in range(10):
    b.append(rec(i, 100 - len(rec(i))))
b.peek(9, 100000)
b.ack(9)
f = open("buf.ptr")
ptr = f.read()
f.close()
print(json.dumps({"files": sorted([n for n in os.listdir(".") if n.startswith("buf")]), "ptr": ptr.split()[:4],
                  "held": seqs(Buffer(".", 2048, 512).peek(100, 100000))}))
""")
    # Records 0-3 in segment 1, 4-7 in 2, 8-9 in 3; after 9 acknowledged only segment 3 is left.
    assert result == {"files": ["buf-3.log", "buf.ptr"], "ptr": ["3", "107", "0", "0"], "held": [9]}


def test_a_torn_record_is_skipped_and_appends_go_to_a_new_segment(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, BUFFER + """
import os
b = Buffer(".", 65536)
b.append(rec(0))
b.append(rec(1))
f = open("buf-1.log", "ab")
f.write(b"\\xa5\\x00\\x30\\x12\\x34")  # the start of a record, then the power went
f.close()
again = Buffer(".", 65536)
again.append(rec(2))
print(json.dumps({"held": seqs(Buffer(".", 65536).peek(100, 100000)),
                  "files": sorted([n for n in os.listdir(".") if n.startswith("buf-")])}))
""")
    assert result == {"held": [0, 1, 2], "files": ["buf-1.log", "buf-2.log"]}


def test_a_record_larger_than_a_segment_is_refused(micropython, tmp_path):
    result = run_micropython(micropython, tmp_path, BUFFER + """
b = Buffer(".", 2048, 512)
try:
    b.append(b"x" * 600)
    print(json.dumps("kept"))
except ValueError as e:
    print(json.dumps(str(e)))
""")
    assert result == "a record of 600 bytes does not fit a 512-byte segment"
