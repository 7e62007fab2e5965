// payload.h, the C msgpack writer and flat-map reader: every encoding boundary checked against msgpack-c, the buffer
// never overrun, and the reader safe on truncated, random and deeply nested input.
#include <firelink/payload.h>

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "guarded_bytes.hpp"
#include "msgpack_c_bytes.hpp"
#include "payload_sample.h"

extern "C" {
std::size_t fl_probe_c_write_sample(std::uint8_t *buf, std::size_t cap, int *overflow);
int fl_probe_c_find_int(const std::uint8_t *data, std::size_t size, const char *key, std::int64_t *out);
}

namespace {

using bytes = std::vector<std::uint8_t>;
using firelink::test::guarded_bytes;
using firelink::test::packed_by_msgpack_c;

// Runs `write` on a fresh writer of capacity `cap` and returns what it wrote; fails the test on overflow.
bytes written(const std::function<void(fl_mp_writer &)> &write, std::size_t cap = 1u << 20) {
    bytes buf(cap);
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf.data(), buf.size());
    write(w);
    EXPECT_TRUE(fl_mp_ok(&w)) << "unexpected overflow";
    EXPECT_LE(w.len, cap);
    buf.resize(w.len);
    return buf;
}

// Decodes exactly one msgpack object with msgpack-c, the reference, and requires that it used every byte.
msgpack::object_handle decode(const bytes &b) {
    std::size_t offset = 0;
    auto oh = msgpack::unpack(reinterpret_cast<const char *>(b.data()), b.size(), offset);
    EXPECT_EQ(offset, b.size()) << "trailing bytes after the object";
    return oh;
}

bytes concat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto &p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

bytes fixstr(std::string_view s) {
    bytes out;
    out.reserve(1 + s.size());
    out.push_back(static_cast<std::uint8_t>(0xa0 | s.size()));
    for (char c : s) out.push_back(static_cast<std::uint8_t>(c));
    return out;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
}

// ---- Writing: integers ---------------------------------------------------------------------------------------

struct int_case {
    std::int64_t value;
    std::size_t size;    // the smallest msgpack encoding
    std::uint8_t first;  // its type byte
};

const int_case int_cases[] = {
    {0, 1, 0x00},
    {1, 1, 0x01},
    {127, 1, 0x7f},
    {128, 2, 0xcc},
    {255, 2, 0xcc},
    {256, 3, 0xcd},
    {65535, 3, 0xcd},
    {65536, 5, 0xce},
    {4294967295LL, 5, 0xce},
    {4294967296LL, 9, 0xcf},
    {std::numeric_limits<std::int64_t>::max(), 9, 0xcf},
    {-1, 1, 0xff},
    {-32, 1, 0xe0},
    {-33, 2, 0xd0},
    {-128, 2, 0xd0},
    {-129, 3, 0xd1},
    {-32768, 3, 0xd1},
    {-32769, 5, 0xd2},
    {std::numeric_limits<std::int32_t>::min(), 5, 0xd2},
    {std::int64_t{std::numeric_limits<std::int32_t>::min()} - 1, 9, 0xd3},
    {std::numeric_limits<std::int64_t>::min(), 9, 0xd3},
};

TEST(PayloadWriteInt, EveryBoundaryUsesTheSmallestEncodingAndDecodesBack) {
    for (const auto &c : int_cases) {
        SCOPED_TRACE(c.value);
        auto b = written([&](fl_mp_writer &w) { fl_mp_int(&w, c.value); });
        ASSERT_EQ(b.size(), c.size);
        EXPECT_EQ(b[0], c.first);
        auto oh = decode(b);
        EXPECT_EQ(oh.get().as<std::int64_t>(), c.value);
        // msgpack-c packs the same value to the same bytes.
        EXPECT_EQ(b, packed_by_msgpack_c([&](auto &pk) { pk.pack(c.value); }));
    }
}

TEST(PayloadWriteInt, UnsignedBoundariesAboveInt64Max) {
    const std::uint64_t values[] = {0, 127, 128, 255, 256, 65535, 65536, 0xFFFFFFFFull, 0x100000000ull,
                                    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1,
                                    std::numeric_limits<std::uint64_t>::max()};
    for (auto v : values) {
        SCOPED_TRACE(v);
        auto b = written([&](fl_mp_writer &w) { fl_mp_uint(&w, v); });
        EXPECT_EQ(decode(b).get().as<std::uint64_t>(), v);
        EXPECT_EQ(b, packed_by_msgpack_c([&](auto &pk) { pk.pack(v); }));
    }
}

TEST(PayloadWriteInt, ReadsBackThroughFind) {
    for (const auto &c : int_cases) {
        SCOPED_TRACE(c.value);
        auto b = written([&](fl_mp_writer &w) {
            fl_mp_map(&w, 1);
            fl_mp_kv_int(&w, "v", c.value);
        });
        fl_mp_value v;
        ASSERT_EQ(fl_mp_find(b.data(), b.size(), "v", &v), 1);
        EXPECT_EQ(v.type, FL_MP_INT);
        EXPECT_EQ(v.i, c.value);
    }
    const std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
    auto b = written([&](fl_mp_writer &w) {
        fl_mp_map(&w, 2);
        fl_mp_str(&w, "u");
        fl_mp_uint(&w, big);
        fl_mp_str(&w, "m");
        fl_mp_uint(&w, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    });
    fl_mp_value v;
    ASSERT_EQ(fl_mp_find(b.data(), b.size(), "u", &v), 1);
    EXPECT_EQ(v.type, FL_MP_UINT);
    EXPECT_EQ(v.u, big);
    ASSERT_EQ(fl_mp_find(b.data(), b.size(), "m", &v), 1);
    EXPECT_EQ(v.type, FL_MP_INT);
    EXPECT_EQ(v.i, std::numeric_limits<std::int64_t>::max());
}

// ---- Writing: doubles, bools, nil ---------------------------------------------------------------------------

TEST(PayloadWriteScalar, DoublesAreFloat64AndBitExact) {
    const double values[] = {0.0, -0.0, 1.5, -27.25, 1e300, -1e-300, std::numeric_limits<double>::denorm_min(),
                             std::numeric_limits<double>::max(), std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()};
    for (double d : values) {
        SCOPED_TRACE(d);
        auto b = written([&](fl_mp_writer &w) { fl_mp_double(&w, d); });
        ASSERT_EQ(b.size(), 9u);
        EXPECT_EQ(b[0], 0xcb);
        auto oh = decode(b);
        ASSERT_EQ(oh.get().type, msgpack::type::FLOAT64);
        double back = oh.get().as<double>();
        EXPECT_EQ(std::memcmp(&back, &d, sizeof d), 0);

        auto m = written([&](fl_mp_writer &w) {
            fl_mp_map(&w, 1);
            fl_mp_kv_double(&w, "d", d);
        });
        fl_mp_value v;
        ASSERT_EQ(fl_mp_find(m.data(), m.size(), "d", &v), 1);
        EXPECT_EQ(v.type, FL_MP_DOUBLE);
        EXPECT_EQ(std::memcmp(&v.d, &d, sizeof d), 0);
    }
}

TEST(PayloadWriteScalar, BoolsAndNil) {
    EXPECT_EQ(written([](fl_mp_writer &w) { fl_mp_bool(&w, 1); }), bytes{0xc3});
    EXPECT_EQ(written([](fl_mp_writer &w) { fl_mp_bool(&w, 0); }), bytes{0xc2});
    EXPECT_EQ(written([](fl_mp_writer &w) { fl_mp_bool(&w, 42); }), bytes{0xc3}) << "any non-zero int is true";
    EXPECT_EQ(written([](fl_mp_writer &w) { fl_mp_nil(&w); }), bytes{0xc0});
    EXPECT_TRUE(decode(bytes{0xc3}).get().as<bool>());

    auto m = written([](fl_mp_writer &w) {
        fl_mp_map(&w, 3);
        fl_mp_kv_bool(&w, "t", 1);
        fl_mp_kv_bool(&w, "f", 0);
        fl_mp_str(&w, "n");
        fl_mp_nil(&w);
    });
    fl_mp_value v;
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "t", &v), 1);
    EXPECT_EQ(v.type, FL_MP_BOOL);
    EXPECT_EQ(v.b, 1);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "f", &v), 1);
    EXPECT_EQ(v.type, FL_MP_BOOL);
    EXPECT_EQ(v.b, 0);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "n", &v), 1);
    EXPECT_EQ(v.type, FL_MP_NIL);
}

// ---- Writing: strings, arrays, maps --------------------------------------------------------------------------

TEST(PayloadWriteStr, EveryLengthBoundary) {
    struct str_case { std::size_t len; std::size_t header; std::uint8_t first; };
    const str_case cases[] = {{0, 1, 0xa0},     {1, 1, 0xa1},       {31, 1, 0xbf},       {32, 2, 0xd9},
                              {255, 2, 0xd9},   {256, 3, 0xda},     {65535, 3, 0xda},    {65536, 5, 0xdb},
                              {70000, 5, 0xdb}};
    for (const auto &c : cases) {
        SCOPED_TRACE(c.len);
        std::string s = pattern(c.len);
        auto b = written([&](fl_mp_writer &w) { fl_mp_str(&w, s.c_str()); });
        ASSERT_EQ(b.size(), c.header + c.len);
        EXPECT_EQ(b[0], c.first);
        auto oh = decode(b);
        ASSERT_EQ(oh.get().type, msgpack::type::STR);
        EXPECT_EQ(oh.get().as<std::string>(), s);
        EXPECT_EQ(b, packed_by_msgpack_c([&](auto &pk) { pk.pack(s); }));

        auto m = written([&](fl_mp_writer &w) {
            fl_mp_map(&w, 1);
            fl_mp_kv_str(&w, "s", s.c_str());
        });
        fl_mp_value v;
        ASSERT_EQ(fl_mp_find(m.data(), m.size(), "s", &v), 1);
        ASSERT_EQ(v.type, FL_MP_STR);
        ASSERT_EQ(v.str_len, c.len);
        EXPECT_EQ(std::string(v.str, v.str_len), s);
        // The view points into the input.
        EXPECT_GE(reinterpret_cast<const std::uint8_t *>(v.str), m.data());
        EXPECT_LE(reinterpret_cast<const std::uint8_t *>(v.str) + v.str_len, m.data() + m.size());
    }
}

TEST(PayloadWriteStr, StrNKeepsEmbeddedNulBytes) {
    const char raw[] = {'a', '\0', 'b', '\0'};
    auto b = written([&](fl_mp_writer &w) { fl_mp_str_n(&w, raw, 4); });
    EXPECT_EQ(decode(b).get().as<std::string>(), std::string(raw, 4));
}

// A container's count at an encoding boundary: in the type byte (fixarray, fixmap), then 16-bit, then 32-bit.
struct count_case {
    std::uint32_t n;
    std::size_t header;  // bytes of the header
    std::uint8_t first;  // its type byte
};

// For each case, writes a container of n elements with `write(w, n)`, checks its type byte and that its header is the
// one msgpack-c packs with `pack_header(pk, n)`, and hands the bytes and msgpack-c's decoding to `check_elements`.
template <class Write, class PackHeader, class CheckElements>
void for_each_count(std::initializer_list<count_case> cases, Write write, PackHeader pack_header,
                    CheckElements check_elements) {
    for (const auto &c : cases) {
        SCOPED_TRACE(c.n);
        auto b = written([&](fl_mp_writer &w) { write(w, c.n); });
        EXPECT_EQ(b[0], c.first);
        auto header = packed_by_msgpack_c([&](auto &pk) { pack_header(pk, c.n); });
        EXPECT_EQ(bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(c.header)), header);
        auto oh = decode(b);
        check_elements(b, oh.get(), c.n);
    }
}

TEST(PayloadWriteContainer, ArraysAtEveryCountBoundary) {
    for_each_count(
        {{0, 1, 0x90}, {15, 1, 0x9f}, {16, 3, 0xdc}, {65535, 3, 0xdc}, {65536, 5, 0xdd}},
        [](fl_mp_writer &w, std::uint32_t n) {
            fl_mp_array(&w, n);
            for (std::uint32_t i = 0; i < n; ++i) fl_mp_int(&w, static_cast<std::int64_t>(i) - 100);
        },
        [](auto &pk, std::uint32_t n) { pk.pack_array(n); },
        [](const bytes &, const msgpack::object &array, std::uint32_t n) {
            ASSERT_EQ(array.type, msgpack::type::ARRAY);
            ASSERT_EQ(array.via.array.size, n);
            for (std::uint32_t i = 0; i < n; ++i)
                ASSERT_EQ(array.via.array.ptr[i].as<std::int64_t>(), static_cast<std::int64_t>(i) - 100) << i;
        });
}

TEST(PayloadWriteContainer, MapsAtEveryCountBoundary) {
    for_each_count(
        {{0, 1, 0x80}, {15, 1, 0x8f}, {16, 3, 0xde}, {65535, 3, 0xde}, {65536, 5, 0xdf}},
        [](fl_mp_writer &w, std::uint32_t n) {
            fl_mp_map(&w, n);
            for (std::uint32_t i = 0; i < n; ++i) fl_mp_kv_int(&w, ("k" + std::to_string(i)).c_str(), i * 3);
        },
        [](auto &pk, std::uint32_t n) { pk.pack_map(n); },
        [](const bytes &b, const msgpack::object &map, std::uint32_t n) {
            ASSERT_EQ(map.type, msgpack::type::MAP);
            ASSERT_EQ(map.via.map.size, n);
            for (std::uint32_t i = 0; i < n; ++i) {
                ASSERT_EQ(map.via.map.ptr[i].key.as<std::string>(), "k" + std::to_string(i));
                ASSERT_EQ(map.via.map.ptr[i].val.as<std::int64_t>(), std::int64_t{i} * 3);
            }
            EXPECT_EQ(fl_mp_is_map(b.data(), b.size()), 1);
            if (n > 0) {
                // The last key of a large map is found: every pair before it was skipped correctly.
                fl_mp_value v;
                std::string last = "k" + std::to_string(n - 1);
                ASSERT_EQ(fl_mp_find(b.data(), b.size(), last.c_str(), &v), 1);
                EXPECT_EQ(v.i, std::int64_t{n - 1} * 3);
            }
        });
}

// The C and C++ builds of the header write identical bytes (same static inline code, two compilers).
TEST(PayloadWriteLanguages, CBuildWritesTheSameBytesAsCxxBuild) {
    bytes c_out(256);
    int overflow = -1;
    c_out.resize(fl_probe_c_write_sample(c_out.data(), c_out.size(), &overflow));
    EXPECT_EQ(overflow, 0);
    auto cxx_out = written([](fl_mp_writer &w) { fl_test_write_payload_sample(&w); });
    EXPECT_EQ(c_out, cxx_out);
    std::int64_t neg = 0;
    ASSERT_EQ(fl_probe_c_find_int(cxx_out.data(), cxx_out.size(), "neg", &neg), 1);
    EXPECT_EQ(neg, std::int64_t{INT32_MIN} - 1);
    auto oh = decode(c_out);
    EXPECT_EQ(oh.get().via.map.size, 7u);
}

// ---- Writing past the buffer ---------------------------------------------------------------------------------

void write_sample(fl_mp_writer &w) {
    fl_mp_map(&w, 6);
    fl_mp_kv_str(&w, "kind", "telemetry");
    fl_mp_kv_int(&w, "big", -40000);
    fl_mp_kv_double(&w, "lel", 12.5);
    fl_mp_kv_bool(&w, "ok", 1);
    fl_mp_str(&w, "text");
    fl_mp_str(&w, std::string(40, 'x').c_str());
    fl_mp_str(&w, "list");
    fl_mp_array(&w, 3);
    fl_mp_uint(&w, 1u << 20);
    fl_mp_nil(&w);
    fl_mp_int(&w, -1);
}

TEST(PayloadOverflow, NeverWritesPastCapAtAnyCapacity) {
    const bytes full = written(write_sample);
    constexpr std::uint8_t canary = 0xA5;
    constexpr std::size_t guard = 16;
    for (std::size_t cap = 0; cap <= full.size() + 2; ++cap) {
        SCOPED_TRACE(cap);
        bytes storage(cap + guard, canary);
        fl_mp_writer w;
        fl_mp_writer_init(&w, storage.data(), cap);
        write_sample(w);
        for (std::size_t i = cap; i < storage.size(); ++i) ASSERT_EQ(storage[i], canary) << "wrote past cap at " << i;
        ASSERT_LE(w.len, cap);
        if (cap >= full.size()) {
            EXPECT_TRUE(fl_mp_ok(&w));
            EXPECT_EQ(bytes(storage.begin(), storage.begin() + static_cast<std::ptrdiff_t>(w.len)), full);
        } else {
            EXPECT_FALSE(fl_mp_ok(&w));
            EXPECT_NE(w.overflow, 0);
            // What was written is a prefix of the full encoding, and nothing was half-written after it.
            EXPECT_EQ(bytes(storage.begin(), storage.begin() + static_cast<std::ptrdiff_t>(w.len)),
                      bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(w.len)));
            for (std::size_t i = w.len; i < cap; ++i) ASSERT_EQ(storage[i], canary) << "partial write at " << i;
        }
    }
}

TEST(PayloadOverflow, OverflowIsStickyEvenWhenALaterValueWouldFit) {
    std::uint8_t buf[4 + 4];
    std::memset(buf, 0xA5, sizeof buf);
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf, 4);
    fl_mp_str(&w, "hello");  // header (1 byte) fits, the 5 bytes of text do not
    EXPECT_FALSE(fl_mp_ok(&w));
    const std::size_t len = w.len;
    EXPECT_LE(len, 1u);
    fl_mp_nil(&w);  // 1 byte would fit, but the payload is already broken
    fl_mp_int(&w, 1);
    EXPECT_EQ(w.len, len);
    EXPECT_FALSE(fl_mp_ok(&w));
    for (std::size_t i = len; i < sizeof buf; ++i) EXPECT_EQ(buf[i], 0xA5) << i;
}

TEST(PayloadOverflow, NullBufferWithZeroCapacityOnlyOverflows) {
    fl_mp_writer w;
    fl_mp_writer_init(&w, nullptr, 0);
    EXPECT_TRUE(fl_mp_ok(&w));
    fl_mp_str_n(&w, "", 0);
    EXPECT_FALSE(fl_mp_ok(&w));
    EXPECT_EQ(w.len, 0u);
}

TEST(PayloadOverflow, ExactFitIsNotAnOverflow) {
    std::uint8_t buf[9];
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf, sizeof buf);
    fl_mp_int(&w, std::numeric_limits<std::int64_t>::min());
    EXPECT_TRUE(fl_mp_ok(&w));
    EXPECT_EQ(w.len, 9u);
    fl_mp_nil(&w);
    EXPECT_FALSE(fl_mp_ok(&w));
    EXPECT_EQ(w.len, 9u);
}

// ---- Reading: fl_mp_find -------------------------------------------------------------------------------------

// {"x": <value>, "after": 42}: finds x as `type` and proves the value was skipped by its exact length.
void expect_value_then_after(const bytes &value, int type, const char *what) {
    SCOPED_TRACE(what);
    bytes m = concat({bytes{0x82}, fixstr("x"), value, fixstr("after"), bytes{42}});
    ASSERT_NO_THROW(decode(m)) << "test vector is not valid msgpack";
    fl_mp_value v;
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "x", &v), 1);
    EXPECT_EQ(v.type, type);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "after", &v), 1);
    EXPECT_EQ(v.type, FL_MP_INT);
    EXPECT_EQ(v.i, 42);
    EXPECT_EQ(fl_mp_is_map(m.data(), m.size()), 1);
}

TEST(PayloadFind, FindsKeysOfEveryValueTypeAndSkipsEachExactly) {
    expect_value_then_after({0xc0}, FL_MP_NIL, "nil");
    expect_value_then_after({0xc3}, FL_MP_BOOL, "true");
    expect_value_then_after({0x05}, FL_MP_INT, "positive fixint");
    expect_value_then_after({0xfd}, FL_MP_INT, "negative fixint");
    expect_value_then_after({0xcc, 0xff}, FL_MP_INT, "uint8");
    expect_value_then_after({0xcd, 0x01, 0x00}, FL_MP_INT, "uint16");
    expect_value_then_after({0xce, 0, 1, 0, 0}, FL_MP_INT, "uint32");
    expect_value_then_after({0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, FL_MP_UINT, "uint64 max");
    expect_value_then_after({0xd0, 0x80}, FL_MP_INT, "int8");
    expect_value_then_after({0xd1, 0xff, 0x7f}, FL_MP_INT, "int16");
    expect_value_then_after({0xd2, 0x80, 0, 0, 0}, FL_MP_INT, "int32");
    expect_value_then_after({0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, FL_MP_INT, "int64");
    expect_value_then_after({0xca, 0x3f, 0xc0, 0, 0}, FL_MP_DOUBLE, "float32");
    expect_value_then_after({0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, FL_MP_DOUBLE, "float64");
    expect_value_then_after(fixstr("abc"), FL_MP_STR, "fixstr");
    expect_value_then_after({0xd9, 3, 'a', 'b', 'c'}, FL_MP_STR, "str8");
    expect_value_then_after({0xda, 0, 3, 'a', 'b', 'c'}, FL_MP_STR, "str16");
    expect_value_then_after({0xdb, 0, 0, 0, 3, 'a', 'b', 'c'}, FL_MP_STR, "str32");
    expect_value_then_after({0xc4, 3, 1, 2, 3}, FL_MP_OTHER, "bin8");
    expect_value_then_after({0xc5, 0, 2, 1, 2}, FL_MP_OTHER, "bin16");
    expect_value_then_after({0xc6, 0, 0, 0, 1, 9}, FL_MP_OTHER, "bin32");
    expect_value_then_after({0xd4, 1, 0xaa}, FL_MP_OTHER, "fixext1");
    expect_value_then_after({0xd5, 1, 0xaa, 0xbb}, FL_MP_OTHER, "fixext2");
    expect_value_then_after({0xd6, 1, 1, 2, 3, 4}, FL_MP_OTHER, "fixext4");
    expect_value_then_after({0xd7, 1, 1, 2, 3, 4, 5, 6, 7, 8}, FL_MP_OTHER, "fixext8");
    expect_value_then_after(concat({bytes{0xd8, 1}, bytes(16, 0x42)}), FL_MP_OTHER, "fixext16");
    expect_value_then_after({0xc7, 2, 1, 0xaa, 0xbb}, FL_MP_OTHER, "ext8");
    expect_value_then_after({0xc8, 0, 1, 1, 0xaa}, FL_MP_OTHER, "ext16");
    expect_value_then_after({0xc9, 0, 0, 0, 1, 1, 0xaa}, FL_MP_OTHER, "ext32");
    // Containers, each holding an "after" of its own that must not be mistaken for the top-level one.
    expect_value_then_after(concat({bytes{0x93, 1, 0x92, 2, 3, 0x81}, fixstr("after"), bytes{0}}), FL_MP_OTHER,
                            "fixarray with nested array and map");
    expect_value_then_after(concat({bytes{0xdc, 0, 2}, fixstr("after"), bytes{0}}), FL_MP_OTHER, "array16");
    expect_value_then_after(concat({bytes{0xdd, 0, 0, 0, 1, 0x90}}), FL_MP_OTHER, "array32");
    expect_value_then_after(concat({bytes{0x81}, fixstr("after"), bytes{0}}), FL_MP_OTHER, "fixmap");
    expect_value_then_after(concat({bytes{0xde, 0, 1}, fixstr("after"), bytes{0x81}, fixstr("after"), bytes{0}}),
                            FL_MP_OTHER, "map16 holding a map");
    expect_value_then_after(concat({bytes{0xdf, 0, 0, 0, 1}, fixstr("after"), bytes{0}}), FL_MP_OTHER, "map32");
}

TEST(PayloadFind, DecodesScalarValuesExactly) {
    bytes m = concat({bytes{0x86}, fixstr("i8"), bytes{0xd0, 0x80}, fixstr("i16"), bytes{0xd1, 0xff, 0x7f},
                      fixstr("i32"), bytes{0xd2, 0x80, 0, 0, 0}, fixstr("f32"), bytes{0xca, 0x3f, 0xc0, 0, 0},
                      fixstr("nfix"), bytes{0xe0}, fixstr("u16"), bytes{0xcd, 0xff, 0xff}});
    fl_mp_value v;
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "i8", &v), 1);
    EXPECT_EQ(v.i, -128);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "i16", &v), 1);
    EXPECT_EQ(v.i, -129);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "i32", &v), 1);
    EXPECT_EQ(v.i, std::numeric_limits<std::int32_t>::min());
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "f32", &v), 1);
    EXPECT_EQ(v.type, FL_MP_DOUBLE);
    EXPECT_EQ(v.d, 1.5);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "nfix", &v), 1);
    EXPECT_EQ(v.i, -32);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "u16", &v), 1);
    EXPECT_EQ(v.i, 65535);
}

TEST(PayloadFind, MatchesWholeKeysOnlyAndSkipsNonStringKeys) {
    // {1: "k", "temperature": 1, "temp": 2, "k": 3, "": 4, <40-char str8 key>: 5}
    std::string long_key(40, 'q');
    bytes m = concat({bytes{0x86, 0x01}, fixstr("k"), fixstr("temperature"), bytes{1}, fixstr("temp"), bytes{2},
                      fixstr("k"), bytes{3}, fixstr(""), bytes{4}, bytes{0xd9, 40},
                      bytes(long_key.begin(), long_key.end()), bytes{5}});
    ASSERT_NO_THROW(decode(m));
    fl_mp_value v;
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "temp", &v), 1);
    EXPECT_EQ(v.i, 2);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "temperature", &v), 1);
    EXPECT_EQ(v.i, 1);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "k", &v), 1);
    EXPECT_EQ(v.i, 3) << "an integer key or a string value must not match";
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "", &v), 1);
    EXPECT_EQ(v.i, 4);
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), long_key.c_str(), &v), 1);
    EXPECT_EQ(v.i, 5);
    EXPECT_EQ(fl_mp_find(m.data(), m.size(), "tem", &v), 0);
    EXPECT_EQ(fl_mp_find(m.data(), m.size(), "temperatures", &v), 0);
    EXPECT_EQ(fl_mp_find(m.data(), m.size(), long_key.substr(1).c_str(), &v), 0);
}

TEST(PayloadFind, AbsentKeyReturnsZeroAndClearsTheOutput) {
    bytes m = concat({bytes{0x81}, fixstr("a"), bytes{1}});
    fl_mp_value v;
    std::memset(&v, 0x5c, sizeof v);
    EXPECT_EQ(fl_mp_find(m.data(), m.size(), "b", &v), 0);
    EXPECT_EQ(v.type, FL_MP_NONE);
    EXPECT_EQ(v.str, nullptr);
    EXPECT_EQ(fl_mp_find(bytes{0x80}.data(), 1, "a", &v), 0);
}

TEST(PayloadFind, NonMapInputReturnsZero) {
    fl_mp_value v;
    const bytes not_maps[] = {
        {0x91, 0x01},                           // [1]
        concat({bytes{0x92}, fixstr("a"), bytes{1}}),  // ["a", 1]: looks like a pair, but is an array
        {0x05}, {0xc0}, {0xc3}, fixstr("a"), {0xc1}, {0xdc, 0, 2, 0xa1, 'a', 1},
    };
    for (const auto &b : not_maps) {
        SCOPED_TRACE(testing::PrintToString(b));
        EXPECT_EQ(fl_mp_find(b.data(), b.size(), "a", &v), 0);
        EXPECT_EQ(v.type, FL_MP_NONE);
        EXPECT_EQ(fl_mp_is_map(b.data(), b.size()), 0);
    }
    EXPECT_EQ(fl_mp_find(nullptr, 0, "a", &v), 0);
    EXPECT_EQ(fl_mp_find(nullptr, 5, "a", &v), 0);
    std::uint8_t one = 0x81;
    EXPECT_EQ(fl_mp_find(&one, 0, "a", &v), 0) << "size 0 is an empty map";
}

TEST(PayloadFind, MalformedPairsOnTheWayToTheKeyReturnZero) {
    fl_mp_value v;
    // {"a": 0xc1 (never used), "b": 1}
    bytes m = concat({bytes{0x82}, fixstr("a"), bytes{0xc1}, fixstr("b"), bytes{1}});
    EXPECT_EQ(fl_mp_find(m.data(), m.size(), "b", &v), 0);
    EXPECT_EQ(v.type, FL_MP_NONE);
    EXPECT_EQ(fl_mp_is_map(m.data(), m.size()), 0);
    // a str32 whose length runs far past the end
    bytes huge = concat({bytes{0x82}, fixstr("a"), bytes{0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'}, fixstr("b"), bytes{1}});
    EXPECT_EQ(fl_mp_find(huge.data(), huge.size(), "b", &v), 0);
    EXPECT_EQ(fl_mp_find(huge.data(), huge.size(), "a", &v), 0);
}

// ---- Reading hostile input -----------------------------------------------------------------------------------

struct key_span {
    std::string key;
    std::size_t value_end;  // offset just past the key's value in the full encoding
};

TEST(PayloadHostile, TruncatedAtEveryPrefixNeverReportsACutValue) {
    // A map with every kind of value, each key's value ending at a known offset.
    std::vector<key_span> spans;
    bytes full(4096);
    fl_mp_writer w;
    fl_mp_writer_init(&w, full.data(), full.size());
    auto mark = [&](const char *key) { spans.push_back({key, w.len}); };
    fl_mp_map(&w, 9);
    fl_mp_kv_int(&w, "small", 7), mark("small");
    fl_mp_kv_int(&w, "neg64", std::numeric_limits<std::int64_t>::min()), mark("neg64");
    fl_mp_kv_str(&w, "name", std::string(300, 'n').c_str()), mark("name");
    fl_mp_kv_double(&w, "lel", 33.25), mark("lel");
    fl_mp_str(&w, "nested");
    fl_mp_array(&w, 3);
    fl_mp_map(&w, 1);
    fl_mp_kv_int(&w, "small", -1);
    fl_mp_str(&w, "abc");
    fl_mp_array(&w, 0);
    mark("nested");
    fl_mp_kv_bool(&w, "flag", 1), mark("flag");
    fl_mp_str(&w, "none");
    fl_mp_nil(&w);
    mark("none");
    fl_mp_str(&w, "u64");
    fl_mp_uint(&w, std::numeric_limits<std::uint64_t>::max());
    mark("u64");
    fl_mp_kv_str(&w, "last", "end"), mark("last");
    ASSERT_TRUE(fl_mp_ok(&w));
    full.resize(w.len);
    ASSERT_NO_THROW(decode(full));

    // The value each key has in the complete map.
    std::vector<fl_mp_value> want(spans.size());
    for (std::size_t k = 0; k < spans.size(); ++k)
        ASSERT_EQ(fl_mp_find(full.data(), full.size(), spans[k].key.c_str(), &want[k]), 1) << spans[k].key;

    guarded_bytes guard(full.size());
    for (std::size_t len = 0; len < full.size(); ++len) {
        const std::uint8_t *p = guard.place(std::span(full.data(), len));
        EXPECT_EQ(fl_mp_is_map(p, len), len == 0 ? 1 : 0) << "prefix " << len << " is not a whole map";
        for (std::size_t k = 0; k < spans.size(); ++k) {
            fl_mp_value v;
            int found = fl_mp_find(p, len, spans[k].key.c_str(), &v);
            if (spans[k].value_end > len) {
                ASSERT_EQ(found, 0) << "key '" << spans[k].key << "' reported though its value is cut at " << len;
                ASSERT_EQ(v.type, FL_MP_NONE);
                continue;
            }
            if (!found) continue;  // a reader may also refuse a map that is cut further on
            ASSERT_EQ(v.type, want[k].type) << spans[k].key << " at prefix " << len;
            ASSERT_EQ(v.i, want[k].i);
            ASSERT_EQ(v.u, want[k].u);
            ASSERT_EQ(v.b, want[k].b);
            ASSERT_EQ(v.str_len, want[k].str_len);
            if (v.type == FL_MP_STR) {
                ASSERT_LE(reinterpret_cast<const std::uint8_t *>(v.str) + v.str_len, p + len);
                ASSERT_EQ(std::memcmp(v.str, want[k].str, v.str_len), 0);
            }
        }
    }
}

// msgpack-c, limited to what `size` bytes can hold, as the reference for "is this exactly one well-formed map".
bool reference_is_map(const std::uint8_t *data, std::size_t size) {
    if (size == 0) return true;
    const std::size_t n = std::max<std::size_t>(size, 1);
    msgpack::unpack_limit limit(n, n, n, n, n, 10000);
    try {
        std::size_t offset = 0;
        auto oh = msgpack::unpack(reinterpret_cast<const char *>(data), size, offset, nullptr, nullptr, limit);
        return offset == size && oh.get().type == msgpack::type::MAP;
    } catch (const std::exception &) {
        return false;
    }
}

// What msgpack-c says about `key` in a well-formed map: the first string key that equals it.
const msgpack::object *reference_find(const msgpack::object &map, std::string_view key) {
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
        const auto &kv = map.via.map.ptr[i];
        if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
            return &kv.val;
    }
    return nullptr;
}

void expect_same_as_reference(const fl_mp_value &v, const msgpack::object &o) {
    switch (o.type) {
    case msgpack::type::NIL: EXPECT_EQ(v.type, FL_MP_NIL); break;
    case msgpack::type::BOOLEAN: EXPECT_EQ(v.type, FL_MP_BOOL); EXPECT_EQ(v.b != 0, o.via.boolean); break;
    case msgpack::type::POSITIVE_INTEGER:
        if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            EXPECT_EQ(v.type, FL_MP_UINT);
            EXPECT_EQ(v.u, o.via.u64);
        } else {
            EXPECT_EQ(v.type, FL_MP_INT);
            EXPECT_EQ(static_cast<std::uint64_t>(v.i), o.via.u64);
        }
        break;
    case msgpack::type::NEGATIVE_INTEGER: EXPECT_EQ(v.type, FL_MP_INT); EXPECT_EQ(v.i, o.via.i64); break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
        EXPECT_EQ(v.type, FL_MP_DOUBLE);
        EXPECT_TRUE(v.d == o.via.f64 || (std::isnan(v.d) && std::isnan(o.via.f64)));
        break;
    case msgpack::type::STR:
        ASSERT_EQ(v.type, FL_MP_STR);
        EXPECT_EQ(std::string_view(v.str, v.str_len), std::string_view(o.via.str.ptr, o.via.str.size));
        break;
    default: EXPECT_EQ(v.type, FL_MP_OTHER); break;
    }
}

// Checks one input against the reference: no crash or over-read (the guard page), and the same answers.
void check_against_reference(guarded_bytes &guard, const bytes &input) {
    const std::uint8_t *p = guard.place(input);
    const int is_map = fl_mp_is_map(p, input.size());
    const bool ref_is_map = reference_is_map(input.data(), input.size());
    // Inputs here are at most 64 bytes, so they cannot nest deeper than the reader's bound.
    ASSERT_EQ(is_map != 0, ref_is_map) << testing::PrintToString(input);
    for (const char *key : {"a", "b", "c", ""}) {
        fl_mp_value v;
        const int found = fl_mp_find(p, input.size(), key, &v);
        if (found && v.type == FL_MP_STR) {
            ASSERT_GE(reinterpret_cast<const std::uint8_t *>(v.str), p);
            ASSERT_LE(reinterpret_cast<const std::uint8_t *>(v.str) + v.str_len, p + input.size());
        }
        if (!found) {
            ASSERT_EQ(v.type, FL_MP_NONE);
        }
        if (ref_is_map && !input.empty()) {
            auto oh = msgpack::unpack(reinterpret_cast<const char *>(input.data()), input.size());
            const msgpack::object *ref = reference_find(oh.get(), key);
            ASSERT_EQ(found != 0, ref != nullptr) << "key '" << key << "' in " << testing::PrintToString(input);
            if (ref) {
                SCOPED_TRACE(testing::PrintToString(input));
                expect_same_as_reference(v, *ref);
            }
        }
    }
}

TEST(PayloadHostile, RandomBytesNeverCrashAndAgreeWithMsgpackC) {
    std::mt19937 rng(20240611u);
    guarded_bytes guard(64);
    std::uniform_int_distribution<int> byte(0, 255), len(0, 64), coin(0, 3);
    const std::uint8_t map_heads[] = {0x80, 0x81, 0x82, 0x83, 0x8f, 0xde, 0xdf};
    int maps_seen = 0;
    for (int iteration = 0; iteration < 200000; ++iteration) {
        bytes input(static_cast<std::size_t>(len(rng)));
        for (auto &b : input) b = static_cast<std::uint8_t>(byte(rng));
        // Three times in four, start like a map so the reader gets past the first byte.
        if (!input.empty() && coin(rng) != 0) input[0] = map_heads[static_cast<std::size_t>(byte(rng)) % 7];
        check_against_reference(guard, input);
        if (HasFatalFailure()) return;
        maps_seen += fl_mp_is_map(input.data(), input.size());
    }
    EXPECT_GT(maps_seen, 100) << "the generator should also produce some well-formed maps";
}

TEST(PayloadHostile, MutatedValidMapsNeverCrashAndAgreeWithMsgpackC) {
    // Mutations of a valid map with keys a, b, c reach much deeper into the reader than uniform noise.
    bytes seed = concat({bytes{0x84}, fixstr("a"), bytes{0x92, 0x01, 0xa2, 'h', 'i'}, fixstr("b"),
                         bytes{0xcd, 0x12, 0x34}, fixstr("c"), bytes{0x81, 0xa1, 'a', 0xc3}, bytes{0xa0},
                         bytes{0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}});
    ASSERT_TRUE(reference_is_map(seed.data(), seed.size()));
    std::mt19937 rng(7u);
    guarded_bytes guard(64);
    std::uniform_int_distribution<int> byte(0, 255), edits(1, 4), op(0, 3);
    for (int iteration = 0; iteration < 100000; ++iteration) {
        bytes input = seed;
        for (int e = edits(rng); e > 0 && !input.empty(); --e) {
            std::size_t at = static_cast<std::size_t>(byte(rng)) % input.size();
            switch (op(rng)) {
            case 0: input[at] = static_cast<std::uint8_t>(byte(rng)); break;
            case 1: input[at] ^= static_cast<std::uint8_t>(1u << (byte(rng) % 8)); break;
            case 2: input.resize(at); break;
            default:
                if (input.size() < 64) input.insert(input.begin() + static_cast<std::ptrdiff_t>(at),
                                                    static_cast<std::uint8_t>(byte(rng)));
            }
        }
        check_against_reference(guard, input);
        if (HasFatalFailure()) return;
    }
}

bytes nested_arrays_under_key_a(std::size_t depth) {
    bytes m = concat({bytes{0x81}, fixstr("a")});
    m.insert(m.end(), depth, 0x91);  // [[[[ ... ]]]]
    m.push_back(0x01);
    return m;
}

TEST(PayloadHostile, DeepNestingIsRefusedWithoutExhaustingTheStack) {
    for (std::size_t depth : {100u, 1000u, 1000000u}) {
        SCOPED_TRACE(depth);
        bytes m = nested_arrays_under_key_a(depth);
        ASSERT_TRUE(depth > 1000 || reference_is_map(m.data(), m.size())) << "the input itself is well-formed";
        fl_mp_value v;
        EXPECT_EQ(fl_mp_find(m.data(), m.size(), "a", &v), 0);
        EXPECT_EQ(v.type, FL_MP_NONE);
        EXPECT_EQ(fl_mp_is_map(m.data(), m.size()), 0);
    }
    // Nested maps too: {"a": {"a": {"a": ...}}}
    bytes maps = {0x81};
    for (int i = 0; i < 200; ++i) {
        maps.push_back(0xa1);
        maps.push_back('a');
        maps.push_back(0x81);
    }
    maps.insert(maps.end(), {0xa1, 'a', 0x01});
    fl_mp_value v;
    EXPECT_EQ(fl_mp_is_map(maps.data(), maps.size()), 0);
    EXPECT_EQ(fl_mp_find(maps.data(), maps.size(), "a", &v), 0);
}

TEST(PayloadHostile, ModerateNestingIsStillRead) {
    bytes m = nested_arrays_under_key_a(16);
    fl_mp_value v;
    ASSERT_EQ(fl_mp_find(m.data(), m.size(), "a", &v), 1);
    EXPECT_EQ(v.type, FL_MP_OTHER);
    EXPECT_EQ(fl_mp_is_map(m.data(), m.size()), 1);
}

TEST(PayloadHostile, HugeClaimedCountsFailFastOnShortInput) {
    // A map32 claiming 4 billion pairs, an array32 claiming 4 billion items: both end after a few bytes.
    bytes map_claim = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    bytes arr_claim = concat({bytes{0x81}, fixstr("a"), bytes{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}});
    fl_mp_value v;
    EXPECT_EQ(fl_mp_is_map(map_claim.data(), map_claim.size()), 0);
    EXPECT_EQ(fl_mp_find(map_claim.data(), map_claim.size(), "b", &v), 0);
    EXPECT_EQ(fl_mp_is_map(arr_claim.data(), arr_claim.size()), 0);
    EXPECT_EQ(fl_mp_find(arr_claim.data(), arr_claim.size(), "a", &v), 0);
}

// ---- fl_mp_is_map ------------------------------------------------------------------------------------------

TEST(PayloadIsMap, AcceptsExactlyOneWholeMap) {
    EXPECT_EQ(fl_mp_is_map(nullptr, 0), 1) << "an empty input is an empty map";
    bytes empty_map = {0x80};
    EXPECT_EQ(fl_mp_is_map(empty_map.data(), empty_map.size()), 1);
    bytes m = written(write_sample);
    EXPECT_EQ(fl_mp_is_map(m.data(), m.size()), 1);
    bytes map16 = concat({bytes{0xde, 0x00, 0x01}, fixstr("k"), bytes{0x01}});
    EXPECT_EQ(fl_mp_is_map(map16.data(), map16.size()), 1);
    bytes map32 = concat({bytes{0xdf, 0, 0, 0, 1}, fixstr("k"), bytes{0x01}});
    EXPECT_EQ(fl_mp_is_map(map32.data(), map32.size()), 1);
}

TEST(PayloadIsMap, RefusesTrailingBytesNonMapsAndTruncation) {
    bytes m = written(write_sample);
    bytes trailing = m;
    trailing.push_back(0xc0);
    EXPECT_EQ(fl_mp_is_map(trailing.data(), trailing.size()), 0);
    bytes two_maps = {0x80, 0x80};
    EXPECT_EQ(fl_mp_is_map(two_maps.data(), two_maps.size()), 0);
    bytes array = {0x90};
    EXPECT_EQ(fl_mp_is_map(array.data(), array.size()), 0);
    bytes nil = {0xc0};
    EXPECT_EQ(fl_mp_is_map(nil.data(), nil.size()), 0);
    EXPECT_EQ(fl_mp_is_map(m.data(), m.size() - 1), 0);
    EXPECT_EQ(fl_mp_is_map(m.data(), 1), 0);
    EXPECT_EQ(fl_mp_is_map(nullptr, 3), 0);
    bytes odd = {0x81, 0xa1, 'k'};  // a key without its value
    EXPECT_EQ(fl_mp_is_map(odd.data(), odd.size()), 0);
}

}  // namespace
