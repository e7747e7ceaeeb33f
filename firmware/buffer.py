# The offline buffer: readings on flash until the hub has them. Bounded, oldest dropped first when full.
# MicroPython common subset (runs under CPython too). File operations go through a `Files` object, so a
# test can cut the power after any byte.
#
#   buf = Buffer("/", capacity=65536)
#   buf.append(b'{"seq": 7, ...}')            # on flash when it returns
#   batch = buf.peek(20, 8192)                # oldest first: up to 20 records, 8192 payload bytes
#   ...publish, wait for the PUBACK...
#   buf.ack(len(batch))                       # forget them
#   for record in buf.scan(20): ...               # the same, one at a time, without copies (memoryviews)
#
# On flash, in the buffer's folder:
#   buf-<n>.log   segments, append-only, at most `segment` bytes each; n counts up and is never reused.
#                 A record is a 7-byte header, then the payload:
#                   byte 0      0xA5
#                   bytes 1-2   payload length, big-endian
#                   bytes 3-6   CRC-32 of bytes 1-2 and the payload, big-endian
#   buf.ptr       "<segment> <offset> <dropped> <untimed> <crc32 hex>\n": the first record not yet
#                 acknowledged and two counters. Replaced whole (temp file, then rename) once per ack.
#
# Why it survives a power cut: a record is appended at the end of its segment (its header, then its
# payload, in one open) and trusted only when its length and CRC check out, so a torn record is ignored
# and the next append starts a new segment after it. The
# pointer changes only by rename, so it is the old one or the new one: at worst, records already
# acknowledged are sent again, and the hub keeps each seq once. Nothing already on flash is rewritten:
# an ack writes the pointer (about 20 bytes) and deletes a segment once all of it is acknowledged.
#
# Memory: a board runs this every cycle for months, so the steady path allocates little. A record's
# header is read and written through one 7-byte scratch buffer, a payload is read into one scratch
# bytearray (as large as the largest record read), and scan() remembers where records end in lists it
# reuses; peek() copies the payloads out, for callers that keep them.
#
# load() and release() (here because every module imports this one) let the firmware import a module
# where it is needed and let it go afterwards, so that code used at start or now and then (the settings
# checks, the time server's protocol, the TLS handshake) does not stay in the heap.

import binascii
import os
import struct
import sys

SEGMENT = 4096  # one flash erase block on ESP32 and rp2
MAGIC = 0xA5
HEADER_SIZE = 7
PREFIX = "buf-"
SUFFIX = ".log"


_PACKAGE = __name__[:__name__.rfind(".") + 1]  # "firmware." in the package, "" copied flat onto a board


def load(name):
    """The firmware module `name` (a sibling of this one), imported now if it is not already."""
    return __import__(_PACKAGE + name, None, None, ("*",), 0)


def release(module):
    """Under MicroPython, forget an imported module, so the collector takes back its heap once nothing else
    holds it; the next load() imports it again. CPython keeps its modules (its tests hold on to them)."""
    if sys.implementation.name != "micropython":
        return
    name = module.__name__
    sys.modules.pop(name, None)
    if _PACKAGE:  # the package holds its submodule too
        try:
            delattr(sys.modules[_PACKAGE[:-1]], name[len(_PACKAGE):])
        except (KeyError, AttributeError):
            pass


class Files:
    """The file operations the firmware's state uses. Tests pass a subclass that fails part-way."""

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, old, new):
        os.rename(old, new)

    def remove(self, path):
        os.remove(path)

    def listdir(self, directory):
        return os.listdir(directory)


def join(directory, name):
    return directory.rstrip("/") + "/" + name if directory not in ("", ".") else name


def write_atomic(files, path, data, tmp=None):
    """Replace the file at `path` with `data`: a power cut leaves the old content or the new. `tmp` is
    `path` + ".tmp", passed by a caller that writes often and keeps the name."""
    tmp = tmp or path + ".tmp"
    f = files.open(tmp, "wb")
    try:
        f.write(data)
    finally:
        f.close()
    try:
        files.rename(tmp, path)
    except OSError:  # FAT will not rename over a file; read_atomic finds the temp file if cut here
        files.remove(path)
        files.rename(tmp, path)


def read_atomic(files, path):
    """The content write_atomic left at `path` (bytes), or None. Callers check it: the temp file is only
    read when `path` is missing, and may then be a torn first write."""
    for name in (path, path + ".tmp"):
        try:
            f = files.open(name, "rb")
        except OSError:
            continue
        try:
            return f.read()
        finally:
            f.close()
    return None


class Buffer:
    def __init__(self, directory, capacity=65536, segment=SEGMENT, files=None):
        self.directory = directory
        self.files = files or Files()
        self.segment = segment
        self.max_segments = max(2, capacity // segment)
        self.counts = {}    # segment number -> records in it not yet acknowledged
        self.segments = []  # segment files on flash, oldest first
        self.held = 0       # records not yet acknowledged, in all segments
        self.dropped = 0    # records dropped, oldest first, because the buffer was full
        self.untimed = 0    # records acknowledged without being sent because they never got a time
        self._prefix = join(directory, PREFIX)
        self._ptr = join(directory, "buf.ptr")
        self._ptr_tmp = self._ptr + ".tmp"
        self._header = bytearray(HEADER_SIZE)
        self._length = memoryview(self._header)[1:3]  # the header's length field, which its CRC covers
        self._crc = bytearray(4)  # a CRC computed, to compare with the header's bytes
        self.scratch = bytearray(0)  # the payload last read; replaced by a larger one when one does not fit
        self._view = memoryview(self.scratch)
        self._peeked = 0      # records in the last peek; where each ends is in the two lists below
        self._end_seg = []
        self._end_pos = []
        self._load()

    def __len__(self):
        return self.held

    # --- flash layout -------------------------------------------------------------------------------
    def _path(self, seg):
        return "%s%d%s" % (self._prefix, seg, SUFFIX)

    def _load(self):
        for name in self.files.listdir(self.directory or "."):
            if name.startswith(PREFIX) and name.endswith(SUFFIX):
                try:
                    self.segments.append(int(name[len(PREFIX):-len(SUFFIX)]))
                except ValueError:
                    pass
        self.segments.sort()
        ptr = self._read_ptr()
        if ptr is None:  # never acknowledged anything, or the pointer is unreadable: send all again
            ptr = (self.segments[0] if self.segments else 0, 0, 0, 0)
        self.tail = (ptr[0], ptr[1])
        self.dropped, self.untimed = ptr[2], ptr[3]
        while self.segments and self.segments[0] < self.tail[0]:  # acknowledged, left by a power cut
            self.files.remove(self._path(self.segments.pop(0)))
        # Appends go after every segment on flash, and never into the segment the pointer names.
        self.head = ((self.segments[-1] if self.segments else self.tail[0]) + 1, 0)
        for seg in self.segments:
            start = self.tail[1] if seg == self.tail[0] else 0
            count, end, size = self._scan(seg, start)
            self.counts[seg] = count
            self.held += count
            if seg == self.segments[-1] and end == size:
                self.head = (seg, end)  # the last segment ends cleanly: keep appending to it
        # Otherwise its end is torn (or it is empty): the next append starts a new segment.

    def _read_ptr(self):
        data = read_atomic(self.files, self._ptr)
        try:
            fields = data.decode().split()
            numbers = [int(x) for x in fields[:4]]
            crc = binascii.crc32(" ".join(fields[:4]).encode()) & 0xFFFFFFFF
            if len(fields) == 5 and int(fields[4], 16) == crc:
                return numbers
        except (AttributeError, ValueError, UnicodeError):
            pass
        return None

    def _write_ptr(self):
        text = b"%d %d %d %d" % (self.tail[0], self.tail[1], self.dropped, self.untimed)
        crc = binascii.crc32(text) & 0xFFFFFFFF
        write_atomic(self.files, self._ptr, b"%s %08x\n" % (text, crc), self._ptr_tmp)

    def _read_header(self, f):
        """Read a record's header into self._header: its payload length, or -1 when it is torn or worn."""
        h = self._header
        if f.readinto(h) != HEADER_SIZE or h[0] != MAGIC:
            return -1
        length = (h[1] << 8) | h[2]
        return length if HEADER_SIZE + length <= self.segment else -1

    def _read_payload(self, f, length, check=True):
        """Read the payload after the header just read into self.scratch: a memoryview of it, or None when
        it is short or fails its CRC (`check`: a record read again right after it was checked is not)."""
        if length > len(self.scratch):
            self.scratch = bytearray((length + 63) & ~63)
            self._view = memoryview(self.scratch)
        view = self._view[:length]
        if (f.readinto(view) if length else 0) != length:
            return None
        if check:
            # Compared as bytes: 32 bits make no small int on a 32-bit board, and each operation on a
            # large int allocates.
            c = self._crc
            struct.pack_into(">I", c, 0, binascii.crc32(view, binascii.crc32(self._length)))
            h = self._header
            if c[0] != h[3] or c[1] != h[4] or c[2] != h[5] or c[3] != h[6]:
                return None
        return view

    def _scan(self, seg, start):
        """(intact records from `start`, where they end, the file's size)."""
        f = self.files.open(self._path(seg), "rb")
        try:
            f.seek(start)
            count = 0
            end = start
            while True:
                length = self._read_header(f)
                if length < 0 or self._read_payload(f, length) is None:
                    break
                count += 1
                end += HEADER_SIZE + length
            f.seek(0, 2)
            return count, end, f.tell()
        finally:
            f.close()

    # --- the API ------------------------------------------------------------------------------------
    def append(self, payload):
        """Keep one record (bytes). It is on flash when this returns."""
        n = len(payload)
        size = HEADER_SIZE + n
        if size > self.segment or n > 0xFFFF:
            raise ValueError("a record of %d bytes does not fit a %d-byte segment" % (n, self.segment))
        seg, offset = self.head
        if offset and offset + size > self.segment:
            seg, offset = seg + 1, 0
        if seg not in self.segments:
            while len(self.segments) >= self.max_segments:
                self._drop_oldest()
        h = self._header
        h[0] = MAGIC
        h[1] = n >> 8
        h[2] = n & 0xFF
        struct.pack_into(">I", h, 3, binascii.crc32(payload, binascii.crc32(self._length)))
        # Two writes, so the record is never copied whole; cut between them, the header's CRC fails.
        f = self.files.open(self._path(seg), "ab")
        try:
            f.write(h)
            f.write(payload)
        finally:
            f.close()
        if seg not in self.segments:
            self.segments.append(seg)
        self.head = (seg, offset + size)
        self.counts[seg] = self.counts.get(seg, 0) + 1
        self.held += 1

    def _drop_oldest(self):
        # The pointer moves first: if the power goes before the file is deleted, _load deletes it.
        oldest = self.segments[0]
        lost = self.counts.get(oldest, 0)
        self.dropped += lost
        self.tail = (self.segments[1], 0)  # there are at least two segments here
        self._write_ptr()
        self.files.remove(self._path(oldest))
        self.segments.pop(0)
        self.counts.pop(oldest, None)
        self.held -= lost

    def peek(self, max_records, max_bytes):
        """The oldest records (a list of bytes), up to `max_records` and `max_bytes` of payload in all,
        but always one if any is held. They stay held until ack()."""
        out = []
        for record in self.scan(max_records, max_bytes):
            out.append(bytes(record))
        return out

    def scan(self, max_records, max_bytes=0x3FFFFFFF, check=True):
        """Read the oldest records one at a time into self.scratch, up to `max_records` and `max_bytes` of
        payload in all (but always one if any is held), yielding each as a memoryview of self.scratch,
        good until the next. They stay held until ack(). A caller that stops early calls close() on the
        generator, which closes the file. `check` False: the CRCs are not checked again (the records were,
        a moment ago)."""
        self._peeked = 0
        total = 0
        for seg in self.segments:
            left = self.counts.get(seg)
            if seg < self.tail[0] or not left:
                continue
            f = self.files.open(self._path(seg), "rb")
            try:
                pos = self.tail[1] if seg == self.tail[0] else 0
                f.seek(pos)
                while left > 0:
                    length = self._read_header(f)
                    if length < 0:
                        break
                    if self._peeked >= max_records or (self._peeked and total + length > max_bytes):
                        return
                    record = self._read_payload(f, length, check)
                    if record is None:
                        break
                    pos += HEADER_SIZE + length
                    self._ended(seg, pos)
                    total += length
                    left -= 1
                    yield record
            finally:
                f.close()

    def _ended(self, seg, pos):
        # The lists only grow to the largest batch, then are written in place.
        i = self._peeked
        if i < len(self._end_seg):
            self._end_seg[i] = seg
            self._end_pos[i] = pos
        else:
            self._end_seg.append(seg)
            self._end_pos.append(pos)
        self._peeked = i + 1

    def ack(self, count, untimed=0):
        """Forget the first `count` records of the last peek(); `untimed` of them were not sent because
        they never got a time (counted for the device's status)."""
        if count <= 0:
            return
        if count > self._peeked:
            raise IndexError("ack(%d) after a peek of %d" % (count, self._peeked))
        for i in range(count):
            self.counts[self._end_seg[i]] -= 1
        self.held -= count
        self.tail = (self._end_seg[count - 1], self._end_pos[count - 1])
        self._peeked = 0
        self.untimed += untimed
        self._write_ptr()
        # Segments wholly acknowledged go; the one being appended to stays.
        while self.segments and self.segments[0] != self.head[0] and not self.counts.get(self.segments[0]):
            seg = self.segments.pop(0)
            self.counts.pop(seg, None)
            self.files.remove(self._path(seg))
