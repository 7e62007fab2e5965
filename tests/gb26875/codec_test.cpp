// The GB/T 26875.3 codec against the shared vectors, frames built for every application data type, corrupted
// frames, chunked and merged streams with garbage, and a seeded fuzz of the decoder (no crash, no hang, bounded).
#include <firelink/proto/gb26875.hpp>
#include <firelink/proto/gb26875/json.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace gb = firelink::proto::gb26875;
using bytes = std::vector<std::uint8_t>;

namespace {

bytes from_hex(const std::string &h) {
    bytes out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoul(h.substr(i, 2), nullptr, 16)));
    return out;
}

struct vector_row {
    std::string name, direction;
    bytes frame;
};

std::vector<vector_row> load_vectors() {
    std::ifstream in(GB26875_VECTORS);
    std::vector<vector_row> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream cols(line);
        vector_row r;
        std::string hex;
        std::getline(cols, r.name, '\t');
        std::getline(cols, r.direction, '\t');
        std::getline(cols, hex, '\t');
        r.frame = from_hex(hex);
        rows.push_back(std::move(r));
    }
    return rows;
}

const std::map<std::string, bytes> &vectors() {
    static const auto all = [] {
        std::map<std::string, bytes> m;
        for (auto &r : load_vectors()) m[r.name] = r.frame;
        return m;
    }();
    return all;
}

gb::frame decode_ok(const bytes &b) {
    auto d = gb::decode_frame(b);
    EXPECT_TRUE(d.ok()) << gb::error_text(d.error);
    return d.value;
}

const gb::timestamp t_0958_02{2, 58, 9, 26, 9, 12};

}  // namespace

TEST(Vectors, AllSixArePresent) {
    EXPECT_EQ(vectors().size(), 6u);
    for (const char *n : {"fire_alarm_smoke", "confirm", "deny", "uitd_main_power_fault", "read_uitd_status_request",
                          "read_uitd_status_response"})
        EXPECT_TRUE(vectors().count(n)) << n;
}

TEST(Vectors, EveryVectorReencodesToItsBytes) {
    for (const auto &[name, frame] : vectors()) {
        auto d = gb::decode_frame(frame);
        ASSERT_TRUE(d.ok()) << name << ": " << gb::error_text(d.error);
        EXPECT_EQ(gb::encode(d.value), frame) << name;
        if (!d.value.data.empty()) {
            auto app = gb::parse_app_data(d.value.data);
            ASSERT_TRUE(app.ok()) << name << ": " << app.error;
            EXPECT_EQ(gb::encode_app_data(*app.value), d.value.data) << name;
        }
    }
}

TEST(Vectors, FireAlarmSmokeMeansWhatTheTableSays) {
    auto f = decode_ok(vectors().at("fire_alarm_smoke"));
    EXPECT_EQ(f.head.serial, 1);
    EXPECT_EQ(f.head.version_main, 1);
    EXPECT_EQ(f.head.version_user, 1);
    EXPECT_EQ(f.head.command, 2);
    EXPECT_EQ(gb::address_value(f.head.source), 0x0379u);
    EXPECT_EQ(gb::address_value(f.head.destination), 0x015B38u);
    EXPECT_EQ(gb::address_text(f.head.source), "000000000379");
    EXPECT_EQ(f.data.size(), 48u);
    auto app = gb::parse_app_data(f.data);
    ASSERT_TRUE(app.ok()) << app.error;
    EXPECT_EQ(app.value->type, 2);
    ASSERT_EQ(app.value->objects.size(), 1u);
    const auto &c = std::get<gb::component_status>(app.value->objects[0]);
    EXPECT_EQ(c.component.system_type, 1);  // fire alarm system
    EXPECT_EQ(gb::system_type_info(1).name, "fire_alarm_system");
    EXPECT_EQ(c.component.system_address, 1);
    EXPECT_EQ(c.component.component_type, 40);  // smoke detector
    EXPECT_EQ(c.component.loop(), 10);
    EXPECT_EQ(c.component.point(), 2);
    EXPECT_EQ(c.status, 0x0002);  // fire alarm, and bit 0 (normal) clear: still an alarm
    EXPECT_EQ(gb::description_utf8(c.description), "");  // 30 spaces and a NUL
    ASSERT_TRUE(c.time);
    EXPECT_EQ(*c.time, t_0958_02);
    EXPECT_EQ(*c.time->as_utc_seconds(), 1348653482);  // 2012-09-26 09:58:02 as UTC
}

TEST(Vectors, ConfirmAndDenyEchoTheSerialWithSwappedAddresses) {
    auto alarm = decode_ok(vectors().at("fire_alarm_smoke"));
    for (auto [name, cmd] : {std::pair{"confirm", gb::command::confirm}, std::pair{"deny", gb::command::deny}}) {
        auto f = decode_ok(vectors().at(name));
        EXPECT_EQ(f.head.serial, alarm.head.serial);
        EXPECT_EQ(f.head.command, static_cast<std::uint8_t>(cmd));
        EXPECT_TRUE(f.data.empty());
        // answer_to builds exactly this frame from the alarm and the centre's clock.
        EXPECT_EQ(gb::encode(gb::answer_to(alarm.head, cmd, f.head.time)), vectors().at(name)) << name;
    }
}

TEST(Vectors, UitdStatusRequestAndResponse) {
    auto power = gb::parse_app_data(decode_ok(vectors().at("uitd_main_power_fault")).data);
    ASSERT_TRUE(power.ok());
    EXPECT_EQ(power.value->type, 21);
    auto st = std::get<gb::uitd_status>(power.value->objects.at(0));
    EXPECT_EQ(st.status, 0x08);
    EXPECT_EQ(gb::uitd_status_bits[3].name, "main_power_fault");
    EXPECT_EQ(*st.time, t_0958_02);

    auto req = decode_ok(vectors().at("read_uitd_status_request"));
    EXPECT_EQ(req.head.command, 4);
    auto r = gb::parse_app_data(req.data);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value->type, 81);
    EXPECT_EQ(gb::response_type_for(81), 21);
    EXPECT_EQ(std::get<gb::reserved_byte>(r.value->objects.at(0)).value, 0);

    auto resp = decode_ok(vectors().at("read_uitd_status_response"));
    EXPECT_EQ(resp.head.command, 5);
    EXPECT_EQ(resp.head.serial, req.head.serial);
    EXPECT_EQ(gb::parse_app_data(resp.data).value->objects, power.value->objects);
}

TEST(Vectors, JsonNamesTheFields) {
    const auto j = gb::to_json(decode_ok(vectors().at("fire_alarm_smoke")));
    for (const char *s : {"\"serial\":1", "\"command_name\":\"send\"", "\"type_name\":\"component_status\"",
                          "\"status_bits\":[\"fire_alarm\"]", "\"component_type_name\":\"smoke_detector\"",
                          "\"time\":\"2012-09-26T09:58:02\"", "\"source\":\"000000000379\"", "\"checksum\":70"})
        EXPECT_NE(j.find(s), std::string::npos) << s << " in " << j;
}

// Every single-byte corruption of every vector is refused: the checksum covers serial..data, the delimiters and the
// length field frame it.
TEST(Corruption, EveryFlippedByteIsRefused) {
    for (const auto &[name, frame] : vectors()) {
        for (std::size_t i = 0; i < frame.size(); ++i) {
            for (std::uint8_t x : {0x01, 0x80, 0xff, 0x5a}) {
                bytes bad = frame;
                bad[i] ^= x;
                auto d = gb::decode_frame(bad);
                EXPECT_FALSE(d.ok()) << name << " byte " << i << " ^ " << int(x);
            }
        }
    }
}

TEST(Corruption, ReasonsAreSpecific) {
    bytes f = vectors().at("fire_alarm_smoke");
    bytes bad = f;
    bad[f.size() - 3] ^= 1;
    auto d = gb::decode_frame(bad);
    EXPECT_EQ(d.error, gb::frame_error::bad_checksum);
    ASSERT_TRUE(d.head);
    EXPECT_EQ(d.head->serial, 1);  // readable, so the frame can be denied

    bad = f;
    bad[0] = '#';
    EXPECT_EQ(gb::decode_frame(bad).error, gb::frame_error::bad_start);
    bad = f;
    bad.back() = '$';
    EXPECT_EQ(gb::decode_frame(bad).error, gb::frame_error::bad_end);
    bad = f;
    bad[24] = 0x01;
    bad[25] = 0x04;  // 1025
    EXPECT_EQ(gb::decode_frame(bad).error, gb::frame_error::length_too_large);
    bad = f;
    bad.push_back(0);
    EXPECT_EQ(gb::decode_frame(bad).error, gb::frame_error::trailing_bytes);
    for (std::size_t n = 0; n < f.size(); ++n) {
        auto t = gb::decode_frame(bytes(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(n)));
        EXPECT_EQ(t.error, gb::frame_error::incomplete) << n;
    }
}

TEST(Corruption, MaximumLengthFrameRoundTrips) {
    gb::frame f;
    f.head.serial = 0xBEEF;
    f.head.command = 2;
    f.data.assign(1024, 0xAB);
    f.data[0] = 200;  // a vendor type
    auto enc = gb::encode(f);
    EXPECT_EQ(enc.size(), gb::max_frame_size);
    auto d = gb::decode_frame(enc);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d.value, f);
}

namespace {

gb::frame make_frame(std::uint16_t serial, std::uint8_t cmd, bytes data) {
    gb::frame f;
    f.head.serial = serial;
    f.head.time = t_0958_02;
    f.head.source = gb::make_address(0x0379);
    f.head.destination = gb::make_address(0x015B38);
    f.head.command = cmd;
    f.data = std::move(data);
    return f;
}

std::vector<std::pair<std::uint8_t, gb::info_object>> one_of_each() {
    const gb::component_ref comp{1, 2, 42, 0x00030004};
    auto desc = gb::make_description("3楼走廊 烟感");
    return {
        {1, gb::system_status{1, 2, 0x0106, t_0958_02}},
        {2, gb::component_status{comp, 0x0003, desc, t_0958_02}},
        {3, gb::component_analog{comp, 3, -125, t_0958_02}},
        {4, gb::system_operation{1, 2, 0x05, 7, t_0958_02}},
        {5, gb::system_version{1, 2, 3, 4}},
        {6, gb::system_config{1, 2, gb::utf8_to_gb18030("主机 JB-QB-5000")}},
        {7, gb::component_config{comp, desc}},
        {8, gb::system_time{1, 2, t_0958_02}},
        {21, gb::uitd_status{0x21, t_0958_02}},
        {24, gb::uitd_operation{0x20, 9, t_0958_02}},
        {25, gb::uitd_version{2, 11}},
        {26, gb::uitd_config{gb::utf8_to_gb18030("UITD 配置")}},
        {28, gb::clock_value{t_0958_02}},
        {61, gb::read_system{1, 2}},
        {62, gb::read_component{1, 2, 0x00030004}},
        {63, gb::read_component{1, 2, 0x00030004}},
        {64, gb::read_records{1, 2, 10, t_0958_02}},
        {65, gb::read_system{1, 2}},
        {66, gb::read_system{1, 2}},
        {67, gb::read_component{1, 2, 0x00030004}},
        {68, gb::read_system{1, 2}},
        {81, gb::reserved_byte{0}},
        {84, gb::read_records{0, 0, 5, t_0958_02}},
        {85, gb::reserved_byte{0}},
        {86, gb::reserved_byte{0}},
        {88, gb::reserved_byte{0}},
        {89, gb::reserved_byte{0}},
        {90, gb::clock_value{t_0958_02}},
        {91, gb::duty_check{10}},
    };
}

}  // namespace

TEST(AppData, EveryTypeRoundTripsThroughAFrame) {
    std::uint16_t serial = 100;
    for (auto &[type, obj] : one_of_each()) {
        SCOPED_TRACE("type " + std::to_string(type));
        EXPECT_TRUE(gb::type_info(type).known);
        gb::app_data a;
        a.type = type;
        a.objects = {obj, obj};  // two objects each
        const auto data = gb::encode_app_data(a);
        const auto wire = gb::encode(make_frame(serial++, type >= 61 ? 4 : 2, data));
        auto d = gb::decode_frame(wire);
        ASSERT_TRUE(d.ok());
        auto back = gb::parse_app_data(d.value.data);
        ASSERT_TRUE(back.ok()) << back.error;
        EXPECT_EQ(back.value->count, 2);
        EXPECT_EQ(back.value->objects, a.objects);
        EXPECT_EQ(gb::encode(d.value), wire);
        EXPECT_EQ(gb::to_json(d.value).find("\"error\""), std::string::npos) << gb::to_json(d.value);
    }
}

TEST(AppData, ObjectsWithoutTheirTimeLabelAreTolerated) {
    for (std::uint8_t type : {1, 2, 3, 4, 21, 24}) {
        for (auto &[t, obj] : one_of_each()) {
            if (t != type) continue;
            gb::app_data a;
            a.type = type;
            auto bare = obj;
            std::visit([](auto &v) {
                if constexpr (requires { v.time = std::nullopt; }) v.time = std::nullopt;
            }, bare);
            a.objects = {bare, bare, bare};
            const auto data = gb::encode_app_data(a);
            auto back = gb::parse_app_data(data);
            ASSERT_TRUE(back.ok()) << int(type) << ": " << back.error;
            EXPECT_EQ(back.value->objects, a.objects) << int(type);
            EXPECT_EQ(gb::encode_app_data(*back.value), data);
        }
    }
}

TEST(AppData, WrongSizesAreRefusedWithTheNumbers) {
    auto r = gb::parse_app_data(bytes{2, 1, 1, 1, 40});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error.find("type 2: 3 bytes do not hold 1 object(s) of 46 bytes (or 40 without the time label)"),
              std::string::npos)
        << r.error;
    EXPECT_FALSE(gb::parse_app_data(bytes{21, 2, 0x01}).ok());
    EXPECT_FALSE(gb::parse_app_data(bytes{26, 1, 5, 'a'}).ok());
    EXPECT_FALSE(gb::parse_app_data(bytes{26, 1, 1, 'a', 'b'}).ok());
    EXPECT_FALSE(gb::parse_app_data(bytes{21}).ok());
    EXPECT_FALSE(gb::parse_app_data(bytes{}).ok());
}

TEST(AppData, VendorAndReservedTypesPassThroughRaw) {
    for (std::uint8_t type : {128, 200, 255, 0, 9, 22, 82, 92}) {
        bytes data{type, 3, 0xde, 0xad, 0xbe, 0xef};
        auto r = gb::parse_app_data(data);
        ASSERT_TRUE(r.ok()) << int(type);
        EXPECT_FALSE(r.value->known);
        EXPECT_EQ(r.value->type, type);
        EXPECT_EQ(r.value->raw, (bytes{0xde, 0xad, 0xbe, 0xef}));
        EXPECT_EQ(gb::encode_app_data(*r.value), data);
    }
}

TEST(Text, Gb18030DescriptionsBecomeUtf8) {
    auto d = gb::make_description("3楼走廊 烟感");
    EXPECT_EQ(d[0], '3');
    EXPECT_EQ(d[1], 0xC2);  // 楼 in GB18030 is C2 A5
    EXPECT_EQ(d[2], 0xA5);
    EXPECT_EQ(gb::description_utf8(d), "3楼走廊 烟感");
    // Longer than 30 bytes: cut at a character boundary, NUL-terminated.
    auto long_one = gb::make_description("一二三四五六七八九十一二三四五六");
    EXPECT_EQ(long_one[30], 0);
    EXPECT_EQ(gb::description_utf8(long_one), "一二三四五六七八九十一二三四五");
    // Invalid bytes are replaced, never an error.
    std::array<std::uint8_t, 31> bad{};
    bad[0] = 'A';
    bad[1] = 0xFF;
    bad[2] = 'B';
    EXPECT_EQ(gb::description_utf8(bad), "A\xEF\xBF\xBD" "B");
}

TEST(Time, ConversionsAndValidity) {
    EXPECT_FALSE((gb::timestamp{0, 0, 0, 31, 4, 20}).valid());
    EXPECT_FALSE((gb::timestamp{0, 0, 0, 29, 2, 21}).valid());
    EXPECT_TRUE((gb::timestamp{0, 0, 0, 29, 2, 24}).valid());
    EXPECT_FALSE((gb::timestamp{60, 0, 0, 1, 1, 20}).valid());
    EXPECT_FALSE((gb::timestamp{0, 0, 0, 0, 0, 0}).as_utc_seconds());
    for (std::int64_t t : {946684800LL, 1348653482LL, 1709251199LL, 4102444799LL}) {
        auto ts = gb::timestamp::from_utc_seconds(t);
        ASSERT_TRUE(ts.valid());
        EXPECT_EQ(*ts.as_utc_seconds(), t);
    }
    // A UITD in China keeps UTC+8.
    auto local = gb::timestamp::from_utc_seconds(1348653482 - 8 * 3600, 8 * 3600);
    EXPECT_EQ(local, t_0958_02);
}

namespace {

// Feeds `stream` in chunks chosen by `rng` and returns the items.
std::vector<gb::stream_decoder::item> drain(const bytes &stream, std::mt19937 &rng, std::size_t max_chunk) {
    gb::stream_decoder dec;
    std::vector<gb::stream_decoder::item> out;
    std::size_t at = 0;
    while (at < stream.size()) {
        const std::size_t n = std::min<std::size_t>(stream.size() - at, 1 + rng() % max_chunk);
        dec.feed(std::span<const std::uint8_t>(stream).subspan(at, n));
        at += n;
        while (auto it = dec.next()) out.push_back(std::move(*it));
        EXPECT_LE(dec.buffered(), gb::max_frame_size + max_chunk);
    }
    return out;
}

}  // namespace

TEST(Stream, SplitMergedAndGarbageSeparatedFramesAllComeOut) {
    std::mt19937 rng(26875);
    bytes stream;
    std::vector<bytes> expected;
    const bytes garbage[] = {{}, {0x00}, {'@'}, {'@', 'x', '#', '#'}, {'@', '@', 0x01}, {0xff, 0x40, 0x23, 0x23, 0x40}};
    for (int round = 0; round < 20; ++round) {
        for (const auto &[name, frame] : vectors()) {
            const auto &g = garbage[rng() % std::size(garbage)];
            stream.insert(stream.end(), g.begin(), g.end());
            stream.insert(stream.end(), frame.begin(), frame.end());
            expected.push_back(frame);
        }
    }
    for (std::size_t max_chunk : {1u, 2u, 7u, 64u, 5000u}) {
        auto items = drain(stream, rng, max_chunk);
        std::vector<bytes> got;
        for (auto &it : items)
            if (it.ok()) got.push_back(gb::encode(it.value));
        // '@@' + garbage can make a false start that is refused; no real frame is lost or altered.
        ASSERT_EQ(got.size(), expected.size()) << "chunk " << max_chunk;
        for (std::size_t i = 0; i < got.size(); ++i) ASSERT_TRUE(got[i] == expected[i]) << "frame " << i << ", chunk " << max_chunk;
    }
}

TEST(Stream, BadChecksumIsReportedWithItsSerialThenTheStreamGoesOn) {
    bytes bad = vectors().at("fire_alarm_smoke");
    bad[2] = 7;  // serial 7, checksum now wrong
    bytes stream = bad;
    const auto good = vectors().at("uitd_main_power_fault");
    stream.insert(stream.end(), good.begin(), good.end());
    gb::stream_decoder dec;
    dec.feed(stream);
    auto first = dec.next();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->error, gb::frame_error::bad_checksum);
    ASSERT_TRUE(first->head);
    EXPECT_EQ(first->head->serial, 7);
    auto second = dec.next();
    ASSERT_TRUE(second);
    EXPECT_TRUE(second->ok());
    EXPECT_EQ(gb::encode(second->value), good);
    EXPECT_FALSE(dec.next());
    EXPECT_EQ(dec.buffered(), 0u);
}

TEST(Stream, FalseStartWithAHugeLengthResynchronises) {
    // '@@' then a header claiming 1000 bytes: the real frame inside is found once the false frame's end is reached.
    bytes stream{'@', '@'};
    stream.resize(24, 0);
    stream.push_back(0xe8);
    stream.push_back(0x03);
    const auto good = vectors().at("confirm");
    stream.insert(stream.end(), good.begin(), good.end());
    stream.resize(stream.size() + 1100, 0x11);
    gb::stream_decoder dec;
    dec.feed(stream);
    std::vector<gb::stream_decoder::item> items;
    while (auto it = dec.next()) items.push_back(*it);
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0].error, gb::frame_error::bad_end);
    EXPECT_TRUE(items[1].ok());
    EXPECT_EQ(gb::encode(items[1].value), good);
}

// No input crashes, hangs or grows the decoder: random bytes, and vectors with random mutations, in random chunks.
TEST(Fuzz, SeededRandomInputNeverCrashesOrHangs) {
    std::mt19937 rng(0x26875);
    std::vector<bytes> seeds;
    for (const auto &[name, f] : vectors()) seeds.push_back(f);
    std::size_t frames = 0, errors = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        bytes stream;
        for (int k = 0; k < 8; ++k) {
            if (rng() % 3 == 0) {
                for (unsigned n = rng() % 64; n; --n) stream.push_back(static_cast<std::uint8_t>(rng() % 4 ? rng() : '@'));
            } else {
                bytes f = seeds[rng() % seeds.size()];
                for (unsigned m = rng() % 4; m; --m) f[rng() % f.size()] = static_cast<std::uint8_t>(rng());
                stream.insert(stream.end(), f.begin(), f.end());
            }
        }
        for (auto &it : drain(stream, rng, 1 + rng() % 100)) {
            if (it.ok()) {
                ++frames;
                (void)gb::to_json(it.value);  // the app data parser and the printer see mutated data too
            } else {
                ++errors;
            }
        }
        bytes app(rng() % 80);
        for (auto &b : app) b = static_cast<std::uint8_t>(rng());
        if (!app.empty()) app[0] = static_cast<std::uint8_t>(std::vector<int>{1, 2, 3, 4, 6, 21, 26, 64, 91}[rng() % 9]);
        auto r = gb::parse_app_data(app);
        if (r.ok()) {
            EXPECT_EQ(gb::encode_app_data(*r.value).size(), app.size());
        }
    }
    EXPECT_GT(frames, 1000u);  // the unmutated seeds got through
    EXPECT_GT(errors, 1000u);  // and the mutated ones were refused
}
