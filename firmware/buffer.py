# The offline buffer: readings on flash until the hub has them. Bounded, oldest dropped first when full.
# MicroPython common subset (runs under CPython too). File operations go through a `Files` object, so a
# test can cut the power after any byte.
#
#   buf = Buffer("/", capacity=65536)
#   buf.append(b'{"seq": 7, ...}')            # on flash when it returns
#   batch = buf.peek(20, 8192)                # oldest first: up to 20 records, 8192 payload bytes
#   ...publish, wait for the PUBACK...
#   buf.ack(len(batch))                       # forget them
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
# Why it survives a power cut: a record is appended with one write and trusted only when its length and
# CRC check out, so a torn record is ignored and the next append starts a new segment after it. The
# pointer changes only by rename, so it is the old one or the new one: at worst, records already
# acknowledged are sent again, and the hub keeps each seq once. Nothing already on flash is rewritten:
# an ack writes the pointer (about 20 bytes) and deletes a segment once all of it is acknowledged.

import binascii
import os
import struct

MAGIC = 0xA5
HEADER_SIZE = 7
PREFIX = "buf-"
SUFFIX = ".log"


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


def write_atomic(files, path, data):
    """Replace the file at `path` with `data`: a power cut leaves the old content or the new."""
    tmp = path + ".tmp"
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


def _crc(payload):
    return binascii.crc32(payload, binascii.crc32(struct.pack(">H", len(payload)))) & 0xFFFFFFFF


class Buffer:
    def __init__(self, directory, capacity=65536, segment=4096, files=None):
        self.directory = directory
        self.files = files or Files()
        self.segment = segment
        self.max_segments = max(2, capacity // segment)
        self.counts = {}    # segment number -> records in it not yet acknowledged
        self.segments = []  # segment files on flash, oldest first
        self.dropped = 0    # records dropped, oldest first, because the buffer was full
        self.untimed = 0    # records acknowledged without being sent because they never got a time
        self._ends = []     # where each record of the last peek ends: (segment, offset)
        self._load()

    def __len__(self):
        n = 0
        for seg in self.counts:
            n += self.counts[seg]
        return n

    # --- flash layout -------------------------------------------------------------------------------
    def _path(self, seg):
        return join(self.directory, PREFIX + str(seg) + SUFFIX)

    def _ptr_path(self):
        return join(self.directory, "buf.ptr")

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
            if seg == self.segments[-1] and end == size:
                self.head = (seg, end)  # the last segment ends cleanly: keep appending to it
        # Otherwise its end is torn (or it is empty): the next append starts a new segment.

    def _read_ptr(self):
        data = read_atomic(self.files, self._ptr_path())
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
        text = "%d %d %d %d" % (self.tail[0], self.tail[1], self.dropped, self.untimed)
        crc = binascii.crc32(text.encode()) & 0xFFFFFFFF
        write_atomic(self.files, self._ptr_path(), ("%s %08x\n" % (text, crc)).encode())

    def _records(self, f, start, limit):
        """Yield (payload, end offset) for the intact records from `start`; stop at the first bad one."""
        f.seek(start)
        pos = start
        while limit is None or limit > 0:
            header = f.read(HEADER_SIZE)
            if len(header) < HEADER_SIZE:
                return
            magic, length, crc = struct.unpack(">BHI", header)
            if magic != MAGIC or HEADER_SIZE + length > self.segment:  # a torn or worn header
                return
            payload = f.read(length)
            if len(payload) < length or _crc(payload) != crc:
                return
            pos += HEADER_SIZE + length
            if limit is not None:
                limit -= 1
            yield payload, pos

    def _scan(self, seg, start):
        """(intact records from `start`, where they end, the file's size)."""
        f = self.files.open(self._path(seg), "rb")
        try:
            count = 0
            end = start
            for _, end in self._records(f, start, None):
                count += 1
            f.seek(0, 2)
            return count, end, f.tell()
        finally:
            f.close()

    # --- the API ------------------------------------------------------------------------------------
    def append(self, payload):
        """Keep one record (bytes). It is on flash when this returns."""
        size = HEADER_SIZE + len(payload)
        if size > self.segment or len(payload) > 0xFFFF:
            raise ValueError("a record of %d bytes does not fit a %d-byte segment" % (len(payload), self.segment))
        seg, offset = self.head
        if offset and offset + size > self.segment:
            seg, offset = seg + 1, 0
        if seg not in self.segments:
            while len(self.segments) >= self.max_segments:
                self._drop_oldest()
        record = struct.pack(">BHI", MAGIC, len(payload), _crc(payload)) + payload
        f = self.files.open(self._path(seg), "ab")
        try:
            f.write(record)
        finally:
            f.close()
        if seg not in self.segments:
            self.segments.append(seg)
        self.head = (seg, offset + size)
        self.counts[seg] = self.counts.get(seg, 0) + 1

    def _drop_oldest(self):
        # The pointer moves first: if the power goes before the file is deleted, _load deletes it.
        oldest = self.segments[0]
        self.dropped += self.counts.get(oldest, 0)
        self.tail = (self.segments[1], 0)  # there are at least two segments here
        self._write_ptr()
        self.files.remove(self._path(oldest))
        self.segments.pop(0)
        self.counts.pop(oldest, None)

    def peek(self, max_records, max_bytes):
        """The oldest records (a list of bytes), up to `max_records` and `max_bytes` of payload in all,
        but always one if any is held. They stay held until ack()."""
        out = []
        self._ends = []
        total = 0
        for seg in self.segments:
            if seg < self.tail[0] or not self.counts.get(seg):
                continue
            f = self.files.open(self._path(seg), "rb")
            try:
                start = self.tail[1] if seg == self.tail[0] else 0
                for payload, end in self._records(f, start, self.counts[seg]):
                    if len(out) >= max_records or (out and total + len(payload) > max_bytes):
                        return out
                    out.append(payload)
                    self._ends.append((seg, end))
                    total += len(payload)
            finally:
                f.close()
        return out

    def ack(self, count, untimed=0):
        """Forget the first `count` records of the last peek(); `untimed` of them were not sent because
        they never got a time (counted for the device's status)."""
        if count <= 0:
            return
        for seg, _ in self._ends[:count]:
            self.counts[seg] -= 1
        self.tail = self._ends[count - 1]
        self._ends = []
        self.untimed += untimed
        self._write_ptr()
        # Segments wholly acknowledged go; the one being appended to stays.
        while self.segments and self.segments[0] != self.head[0] and not self.counts.get(self.segments[0]):
            seg = self.segments.pop(0)
            self.counts.pop(seg, None)
            self.files.remove(self._path(seg))
