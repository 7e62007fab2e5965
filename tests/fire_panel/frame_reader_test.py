#!/usr/bin/env python3
"""The fake centre's frame reader (firelink_e2e.gb26875.FrameReader) on streams split at every byte offset: each
frame comes out whole and once, in order, with garbage and a corrupt frame between them, however the reads cut it.

Usage (ctest passes nothing): frame_reader_test.py [unittest args]
"""
import unittest

from firelink_e2e.gb26875 import END, FrameReader, checksum, confirm_of, frame, serial_of

# A UITD (0x0379) to the centre (0x015B38), version 1.1, command 2 (send); the serial goes in bytes 2-3.
HEADER = bytes.fromhex("4040" "0100" "0101" "203a091a090c" "790300000000" "385b01000000" "0000" "02")


def uitd_frame(serial, data):
    head = bytearray(HEADER)
    head[2:4] = serial.to_bytes(2, "little")
    return frame(head, data)


FRAMES = [uitd_frame(1, bytes.fromhex("0201010101280a0002000200") + b" " * 30 + b"\0" + bytes(6)),
          uitd_frame(2, b""),
          uitd_frame(3, b"@@##" * 10),  # delimiters inside the data are data
          uitd_frame(0x4040, b"\x40")]


def read(chunks):
    reader = FrameReader()
    out = []
    for c in chunks:
        out += reader.feed(c)
    return out, reader


class FrameReaderTest(unittest.TestCase):
    def test_the_vector_frames_are_well_formed(self):
        for f in FRAMES:
            self.assertEqual(f[:2], b"@@")
            self.assertEqual(f[-2:], END)
            self.assertEqual(f[-3], checksum(f[2:-3]))

    def test_one_split_at_every_offset(self):
        stream = b"".join(FRAMES)
        for cut in range(len(stream) + 1):
            frames, reader = read([stream[:cut], stream[cut:]])
            self.assertEqual(frames, FRAMES, f"split at {cut}")
            self.assertEqual(reader.dropped, 0, f"split at {cut}")

    def test_every_frame_split_at_every_offset_byte_by_byte(self):
        frames, _ = read([bytes([b]) for b in b"".join(FRAMES)])
        self.assertEqual(frames, FRAMES)

    def test_two_splits_at_every_pair_of_offsets_in_a_frame(self):
        f = FRAMES[1] + FRAMES[3]
        for a in range(len(f) + 1):
            for b in range(a, len(f) + 1):
                self.assertEqual(read([f[:a], f[a:b], f[b:]])[0], [FRAMES[1], FRAMES[3]], f"splits at {a}, {b}")

    def test_garbage_and_a_corrupt_frame_cost_only_themselves_at_every_split(self):
        corrupt = bytearray(FRAMES[0])
        corrupt[-3] ^= 0xFF  # a bad checksum
        long_claim = bytearray(FRAMES[1])
        long_claim[24:26] = (2000).to_bytes(2, "little")  # more than the 1024 allowed
        stream = (b"\x00@" + FRAMES[0] + b"@@garbage@" + bytes(corrupt) + FRAMES[1] + bytes(long_claim[:27]) +
                  FRAMES[2] + b"#@" + FRAMES[3] + b"@")
        for cut in range(len(stream) + 1):
            frames, _ = read([stream[:cut], stream[cut:]])
            self.assertEqual(frames, FRAMES, f"split at {cut}")

    def test_the_confirm_answers_with_the_serial_and_the_addresses_swapped(self):
        c = confirm_of(FRAMES[2])
        self.assertEqual(read([c])[0], [c])
        self.assertEqual(serial_of(c), 3)
        self.assertEqual(c[26], 3)
        self.assertEqual(c[24:26], b"\0\0")
        self.assertEqual((c[12:18], c[18:24]), (FRAMES[2][18:24], FRAMES[2][12:18]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
