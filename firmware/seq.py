# Reading numbers that survive reboots and power cuts without writing flash for every reading.
# MicroPython common subset.
#
# The file holds a number no seq has reached: every seq handed out is below it. next() raises it by a
# block (64) before handing out the first seq past it, so one reading in 64 writes the flash; a power cut
# then costs at most the rest of the block, never a seq given twice. close() writes back the exact next
# seq on a clean stop, so a restart carries on without a gap.

try:
    from .buffer import Files, read_atomic, write_atomic
except ImportError:  # copied flat onto a board
    from buffer import Files, read_atomic, write_atomic

BLOCK = 64


class SeqCounter:
    def __init__(self, path, block=BLOCK, files=None):
        self.path = path
        self.block = block
        self.files = files or Files()
        self.value = self._load()  # the next seq to hand out
        self.limit = self.value    # seqs below this are reserved on flash

    def _load(self):
        data = read_atomic(self.files, self.path)
        try:
            return max(0, int(data.decode().strip()))
        except (AttributeError, ValueError, UnicodeError):
            return 0  # no file yet; write_atomic never leaves a torn one in its place

    def next(self):
        seq = self.value
        if seq >= self.limit:
            write_atomic(self.files, self.path, b"%d\n" % (seq + self.block))
            self.limit = seq + self.block
        self.value = seq + 1
        return seq

    def close(self):
        """On a clean stop: keep the unused part of the block for the next start."""
        if self.limit != self.value:
            write_atomic(self.files, self.path, b"%d\n" % self.value)
            self.limit = self.value
