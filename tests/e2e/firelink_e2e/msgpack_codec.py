"""A small msgpack encoder and decoder (python3-msgpack is not a dependency): enough of the format for the uplink's
batches, acknowledgements and command polls. Encodes None, bool, int, float (as float64), str, bytes, list, tuple
and dict; decodes every type (an ext decodes to (type, bytes))."""
import struct


def packb(obj):
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


def _header(out, n, small_base, small_max, codes):
    if small_base is not None and n <= small_max:
        out.append(small_base | n)
    elif n < 0x100 and codes[0] is not None:
        out += bytes([codes[0], n])
    elif n < 0x10000:
        out += bytes([codes[1]]) + struct.pack(">H", n)
    else:
        out += bytes([codes[2]]) + struct.pack(">I", n)


def _pack(o, out):
    if o is None:
        out.append(0xC0)
    elif o is True or o is False:
        out.append(0xC3 if o else 0xC2)
    elif isinstance(o, int):
        if 0 <= o < 0x80:
            out.append(o)
        elif -32 <= o < 0:
            out.append(o & 0xFF)
        elif o >= 0:
            for code, fmt, top in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16), (0xCE, ">I", 1 << 32),
                                   (0xCF, ">Q", 1 << 64)):
                if o < top:
                    out += bytes([code]) + struct.pack(fmt, o)
                    return
            raise OverflowError(o)
        else:
            for code, fmt, low in ((0xD0, ">b", -(1 << 7)), (0xD1, ">h", -(1 << 15)), (0xD2, ">i", -(1 << 31)),
                                   (0xD3, ">q", -(1 << 63))):
                if o >= low:
                    out += bytes([code]) + struct.pack(fmt, o)
                    return
            raise OverflowError(o)
    elif isinstance(o, float):
        out += b"\xcb" + struct.pack(">d", o)
    elif isinstance(o, str):
        data = o.encode("utf-8")
        _header(out, len(data), 0xA0, 31, (0xD9, 0xDA, 0xDB))
        out += data
    elif isinstance(o, (bytes, bytearray)):
        _header(out, len(o), None, -1, (0xC4, 0xC5, 0xC6))
        out += o
    elif isinstance(o, (list, tuple)):
        _header(out, len(o), 0x90, 15, (None, 0xDC, 0xDD))
        for e in o:
            _pack(e, out)
    elif isinstance(o, dict):
        _header(out, len(o), 0x80, 15, (None, 0xDE, 0xDF))
        for k, v in o.items():
            _pack(k, out)
            _pack(v, out)
    else:
        raise TypeError("cannot msgpack " + type(o).__name__)


def unpackb(data):
    value, end = _unpack(memoryview(bytes(data)), 0)
    if end != len(data):
        raise ValueError("%d trailing bytes" % (len(data) - end))
    return value


def _unpack(b, i):
    t = b[i]
    i += 1
    if t <= 0x7F:
        return t, i
    if t >= 0xE0:
        return t - 0x100, i
    if 0x80 <= t <= 0x8F:
        return _map(b, i, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return _array(b, i, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        return _bytes(b, i, t & 0x1F, True)
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in fixed:
        return fixed[t], i
    sizes = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
             0xCA: ">f", 0xCB: ">d"}
    if t in sizes:
        n = struct.calcsize(sizes[t])
        return struct.unpack(sizes[t], b[i:i + n])[0], i + n
    lengths = {0xD9: (">B", "str"), 0xDA: (">H", "str"), 0xDB: (">I", "str"), 0xC4: (">B", "bin"),
               0xC5: (">H", "bin"), 0xC6: (">I", "bin"), 0xDC: (">H", "array"), 0xDD: (">I", "array"),
               0xDE: (">H", "map"), 0xDF: (">I", "map"), 0xC7: (">B", "ext"), 0xC8: (">H", "ext"),
               0xC9: (">I", "ext")}
    if t in lengths:
        fmt, kind = lengths[t]
        n = struct.calcsize(fmt)
        length = struct.unpack(fmt, b[i:i + n])[0]
        i += n
        if kind in ("str", "bin"):
            return _bytes(b, i, length, kind == "str")
        if kind == "array":
            return _array(b, i, length)
        if kind == "map":
            return _map(b, i, length)
        return (b[i], bytes(b[i + 1:i + 1 + length])), i + 1 + length
    fixext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
    if t in fixext:
        n = fixext[t]
        return (b[i], bytes(b[i + 1:i + 1 + n])), i + 1 + n
    raise ValueError("bad msgpack type byte 0x%02x" % t)


def _bytes(b, i, n, text):
    if i + n > len(b):
        raise ValueError("truncated")
    raw = bytes(b[i:i + n])
    return (raw.decode("utf-8") if text else raw), i + n


def _array(b, i, n):
    out = []
    for _ in range(n):
        v, i = _unpack(b, i)
        out.append(v)
    return out, i


def _map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = _unpack(b, i)
        v, i = _unpack(b, i)
        out[k] = v
    return out, i
