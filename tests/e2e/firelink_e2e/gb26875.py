"""GB/T 26875.3 frames as a fake monitoring centre reads and answers them: a stream reader that finds whole frames
however the bytes arrive, and the confirm a centre sends back.

A frame: "@@", serial (2, little-endian), version (2), time (6), source (6), destination (6), data length (2,
little-endian, at most 1024), command (1), data, checksum (1: the sum of serial .. data, modulo 256), "##"."""

START = b"@@"
END = b"##"
HEADER = 27           # "@@" .. command
OVERHEAD = HEADER + 3  # and the checksum and "##"
MAX_DATA = 1024
CONFIRM = 3


def checksum(body):
    """The checksum of a frame whose bytes from the serial to the end of the data are `body`."""
    return sum(body) & 0xFF


def frame(header, data=b""):
    """A whole frame: `header` is its 27 bytes from "@@" to the command (the length bytes are set from `data`)."""
    head = bytearray(header[:HEADER])
    head[24:26] = len(data).to_bytes(2, "little")
    body = bytes(head[2:]) + bytes(data)
    return START + body + bytes([checksum(body)]) + END


def component_alarm(loop, point):
    """The event id of a component's fire alarm, as the fire_panel driver names it."""
    return f"fire_alarm@c1.1.{loop | point << 16:08x}"


def serial_of(f):
    return f[2] | (f[3] << 8)


def confirm_of(f):
    """The confirm (command 3, no data) a centre answers frame `f` with: its serial and version, the addresses
    swapped."""
    head = bytearray(f[:HEADER])
    head[12:18], head[18:24] = f[18:24], f[12:18]
    head[26] = CONFIRM
    return frame(head)


SHORT = "short"  # _frame_at: not enough bytes yet to tell


class FrameReader:
    """Whole frames out of a byte stream, whatever the reads split it into. Bytes before a start delimiter, and a
    candidate that fails its length, checksum or end delimiter, are dropped up to the next "@@": a frame split across
    reads waits for its end. A start that claims more bytes than have come yet gives way to a whole, valid frame
    after it, so garbage ending in "@@" cannot hold back the frames behind it."""

    def __init__(self):
        self.buf = b""
        self.dropped = 0  # bytes that were not part of a whole frame

    def feed(self, data):
        """The frames `data` completes, in order."""
        self.buf += data
        frames = []
        while True:
            start = self.buf.find(START)
            if start < 0:
                # Keep a trailing "@": it may be the first half of the next start delimiter.
                keep = 1 if self.buf.endswith(START[:1]) else 0
                self._drop(len(self.buf) - keep)
                return frames
            self._drop(start)
            found = self._frame_at(0)
            if found is None:
                self._drop(1)
                continue
            if found is SHORT:
                later = self._whole_frame_after(0)
                if later is None:
                    return frames
                self._drop(later)
                continue
            frames.append(found)
            self.buf = self.buf[len(found):]

    def _frame_at(self, i):
        """The whole frame at self.buf[i:], SHORT while its bytes have not all come, None if it is no frame."""
        if len(self.buf) - i < HEADER:
            return SHORT
        length = self.buf[i + 24] | (self.buf[i + 25] << 8)
        if length > MAX_DATA:
            return None
        if len(self.buf) - i < OVERHEAD + length:
            return SHORT
        candidate = self.buf[i:i + OVERHEAD + length]
        if candidate[-2:] != END or candidate[-3] != checksum(candidate[2:-3]):
            return None
        return candidate

    def _whole_frame_after(self, i):
        """The offset of the first start after `i` where a whole, valid frame stands, or None."""
        j = self.buf.find(START, i + 1)
        while j >= 0:
            found = self._frame_at(j)
            if found is not None and found is not SHORT:
                return j
            j = self.buf.find(START, j + 1)
        return None

    def _drop(self, n):
        self.buf = self.buf[n:]
        self.dropped += n
