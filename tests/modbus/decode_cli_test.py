#!/usr/bin/env python3
"""firelink-decode modbus-rtu|modbus-tcp: one JSON line per frame; an invalid frame says why and exits 1.

Usage (ctest passes it): decode_cli_test.py FIRELINK_DECODE [unittest args]
"""
import json
import subprocess
import unittest

from firelink_e2e import take_arguments

DECODE = take_arguments("FIRELINK_DECODE")


def run(*args):
    p = subprocess.run([DECODE, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines()], p.stderr


class DecodeModbus(unittest.TestCase):
    def test_rtu_request_and_response(self):
        code, out, _ = run("modbus-rtu", "01 03 00 00 00 0A C5 CD", "11 03 06 02 2B 00 00 00 64 C8 BA")
        self.assertEqual(code, 0, out)
        self.assertEqual(out[0], {"frame": 1, "valid": True, "unit": 1, "direction": "request", "function": 3,
                                  "function_name": "read_holding_registers", "address": 0, "quantity": 10,
                                  "crc": "0xcdc5"})
        self.assertEqual(out[1]["direction"], "response")
        self.assertEqual(out[1]["registers"], [555, 0, 100])

    def test_bad_crc_is_named_and_fails(self):
        code, out, _ = run("modbus-rtu", "01 03 00 00 00 0A C5 CE")
        self.assertEqual(code, 1)
        self.assertFalse(out[0]["valid"])
        self.assertEqual(out[0]["error"], "crc")
        self.assertIn("0xcec5", out[0]["reason"])

    def test_function_code_and_length_errors(self):
        # 0x07 with a right CRC: a function code this codec does not support.
        code, out, _ = run("modbus-rtu", "11 07 4C 22")
        self.assertEqual(code, 1)
        self.assertEqual(out[0]["error"], "function")
        code, out, _ = run("modbus-rtu", "01 03")
        self.assertEqual((code, out[0]["error"]), (1, "truncated"))
        code, out, _ = run("modbus-rtu", "zz")
        self.assertEqual((code, out[0]["error"]), (1, "hex"))

    def test_one_bad_frame_among_good_ones(self):
        code, out, _ = run("modbus-rtu", "01 03 00 00 00 0A C5 CD", "01 03 00 00 00 0A C5 00")
        self.assertEqual(code, 1)
        self.assertEqual([o["valid"] for o in out], [True, False])

    def test_exception_response(self):
        code, out, _ = run("modbus-rtu", "01 83 02 C0 F1")
        self.assertEqual(code, 0)
        self.assertEqual(out[0]["exception_name"], "illegal_data_address")

    def test_tcp(self):
        code, out, _ = run("modbus-tcp", "00 01 00 00 00 06 01 03 00 00 00 0A", "00 01 00 00 00 09 01 10 00 01 00 01 02 00 07")
        self.assertEqual(code, 0, out)
        self.assertEqual(out[0]["transaction"], 1)
        self.assertEqual(out[1]["values"], [7])
        code, out, _ = run("modbus-tcp", "00 01 00 05 00 06 01 03 00 00 00 0A")
        self.assertEqual((code, out[0]["error"]), (1, "protocol"))
        code, out, _ = run("modbus-tcp", "00 01 00 00 00 09 01 03 00 00 00 0A")
        self.assertEqual((code, out[0]["error"]), (1, "truncated"))
        code, out, _ = run("modbus-tcp", "--request", "00 01 00 00 00 06 01 03 00 00 00 00")
        self.assertEqual((code, out[0]["error"]), (1, "quantity"))

    def test_usage(self):
        self.assertEqual(subprocess.run([DECODE, "modbus-rtu"], capture_output=True).returncode, 2)
        self.assertEqual(subprocess.run([DECODE, "modbus-rtu", "--help"], capture_output=True).returncode, 0)


if __name__ == "__main__":
    unittest.main()
