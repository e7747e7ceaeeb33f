# Power-loss harness for the firmware's flash state. MicroPython common subset: tests run it under the real
# MicroPython unix port (and CPython can run it too).
#
#   micropython power_cut.py REPO WORKDIR buffer [fat] [ff]   -> one JSON line: cut points tried, failures
#   micropython power_cut.py REPO WORKDIR seq [fat] [ff]
#
# A CutFiles layer lets the first `budget` steps through and then "loses power": a step is opening a file
# for writing, each byte written, a rename or a remove. A write cut part-way leaves its first bytes on disk,
# as flash would. After the cut the state is opened again from what is on disk ("reboot") and checked.
# `fat` makes rename refuse to replace a file, as on FAT, so write_atomic's remove-then-rename path is cut too.
# `ff` fills the rest of a cut write with 0xFF, as erased flash reads, so the CRC (not only the length) must
# catch the torn record.
# ruff: noqa: UP031 (percent formatting, as in the firmware it tests)
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
from firmware.buffer import Buffer, Files  # noqa: E402
from firmware.seq import SeqCounter  # noqa: E402


class PowerCut(Exception):
    pass


class CutFile:
    def __init__(self, files, f):
        self.files = files
        self.f = f

    def write(self, data):
        allowed = len(data) if self.files.budget is None else min(len(data), self.files.budget)
        self.f.write(data[:allowed])
        self.files.spend(allowed)
        if allowed < len(data):
            if self.files.ff:
                self.f.write(b"\xff" * (len(data) - allowed))
            self.f.close()
            raise PowerCut()
        return allowed

    def close(self):
        self.f.close()


class CutFiles(Files):
    def __init__(self, flags=()):
        self.budget = None  # None: the power stays on
        self.steps = 0
        self.fat = "fat" in flags
        self.ff = "ff" in flags

    def spend(self, n):
        self.steps += n
        if self.budget is not None:
            self.budget -= n

    def step(self):
        if self.budget == 0:
            raise PowerCut()
        self.spend(1)

    def open(self, path, mode):
        if "r" in mode:
            return open(path, mode)
        self.step()
        return CutFile(self, open(path, mode))

    def rename(self, old, new):
        self.step()
        if self.fat and exists(new):
            raise OSError(17)
        os.rename(old, new)

    def remove(self, path):
        self.step()
        os.remove(path)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def empty_dir(path):
    if not exists(path):
        os.mkdir(path)
    for name in os.listdir(path):
        os.remove(path + "/" + name)


# --- the buffer -----------------------------------------------------------------------------------------
SEGMENT = 160
CAPACITY = 480  # three segments, so the scenario fills it and drops the oldest


def payload(i):
    # Different lengths, so records end at many offsets and segments roll over at different points.
    return ('{"seq": %d, "t": 1795860000, "v": {"temperature": %d.5}}' % (i, i) + "x" * (i % 7)).encode()


def scenario():
    ops = []
    n = 0
    for step in range(14):
        for _ in range(1 + step % 3):
            ops.append(("add", payload(n)))
            n += 1
        if step % 4 == 3:
            ops.append(("send", 3, 2))  # send three, two acknowledged
        elif step % 4 == 1:
            ops.append(("send", 2, 2))
    ops.append(("send", 100, 100))
    ops.append(("add", payload(n)))
    return ops


def do(buf, op):
    if op[0] == "add":
        buf.append(op[1])
    else:
        batch = buf.peek(op[1], 10000)
        buf.ack(min(op[2], len(batch)))


def held(directory):
    buf = Buffer(directory, CAPACITY, SEGMENT)
    records = buf.peek(1000, 1000000)
    if len(records) != len(buf):
        raise AssertionError("len() says %d, peek returns %d" % (len(buf), len(records)))
    return records, buf.dropped


def name(p):
    return p[:40].decode()


def check_buffer(work, flags):
    ops = scenario()
    ref = work + "/ref"
    empty_dir(ref)
    buf = Buffer(ref, CAPACITY, SEGMENT, CutFiles(flags))
    states = [held(ref)]
    for op in ops:
        do(buf, op)
        states.append(held(ref))
    cuts = 0
    failures = []
    trial = work + "/cut"
    for i in range(len(ops)):
        k = 0
        while True:
            empty_dir(trial)
            files = CutFiles(flags)
            buf = Buffer(trial, CAPACITY, SEGMENT, files)
            for op in ops[:i]:
                do(buf, op)
            files.budget = k
            try:
                do(buf, ops[i])
                break  # the op finished within the budget: every cut point of it has been tried
            except PowerCut:
                pass
            cuts += 1
            try:
                why = judge(trial, ops[i], states[i], states[i + 1])
            except Exception as e:  # the buffer must open and work after any cut
                why = "raised %r" % e
            if why and len(failures) < 10:
                failures.append("op %d %s, cut after %d steps: %s" % (i, ops[i][0], k, why[:300]))
            elif why:
                failures.append("...")
            k += 1
    final = states[-1]
    return {"cuts": cuts, "ops": len(ops), "failures": failures[:11], "failed": len(failures), "dropped": final[1],
            "held": [name(p) for p in final[0]]}


def judge(directory, op, before, after):
    records, dropped = held(directory)
    allowed = [before[0], after[0]]
    if op[0] == "add":
        allowed.append([p for p in after[0] if p != op[1]])
    if records not in allowed:
        return "holds %s, expected one of %s" % ([name(p) for p in records],
                                                 [[name(p) for p in a] for a in allowed])
    if dropped not in (before[1], after[1]):
        return "dropped %d, expected %d or %d" % (dropped, before[1], after[1])
    # The buffer works on after the cut: a new record lands after the ones held (the oldest may be
    # dropped to make room), and survives a reboot.
    extra = b'{"seq": 999999, "t": 1795860000, "v": {"humidity": 50}}'
    Buffer(directory, CAPACITY, SEGMENT).append(extra)
    again, _ = held(directory)
    kept = again[:-1]
    if again[-1:] != [extra] or kept != records[len(records) - len(kept):]:
        return "after the reboot, an append gave %s" % [name(p) for p in again]
    return None


# --- the sequence counter -------------------------------------------------------------------------------
def check_seq(work, flags):
    # Hand out seqs, cutting the power at every step; after each reboot the next seq must be above every
    # seq handed out before the cut.
    d = work + "/seq"
    cuts = 0
    failures = []
    k = 0
    while True:
        empty_dir(d)
        files = CutFiles(flags)
        files.budget = k
        handed = []
        try:
            for start in range(3):  # three boots of 70 seqs; the first ends without closing, as at a power cut
                seqs = SeqCounter(d + "/seq", block=16, files=files)
                for _ in range(70):
                    handed.append(seqs.next())
                if start:
                    seqs.close()
            break
        except PowerCut:
            pass
        cuts += 1
        after = SeqCounter(d + "/seq", block=16).next()
        if handed and after <= handed[-1]:
            failures.append("cut after %d steps: %d handed out, then %d after the reboot" % (k, handed[-1], after))
        for i in range(1, len(handed)):
            if handed[i] <= handed[i - 1]:
                failures.append("cut after %d steps: seq %d came after %d" % (k, handed[i], handed[i - 1]))
        k += 1
    return {"cuts": cuts, "failures": failures[:20], "last": handed[-1],
            "next": SeqCounter(d + "/seq", block=16).next()}


if __name__ == "__main__":
    repo, work, what = sys.argv[1], sys.argv[2], sys.argv[3]
    flags = sys.argv[4:]
    print(json.dumps(check_buffer(work, flags) if what == "buffer" else check_seq(work, flags)))
