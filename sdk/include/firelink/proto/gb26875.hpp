// GB/T 26875.3-2011 (城市消防远程监控系统 第3部分：报警传输网络通信协议): the frame codec and the application data
// of the user information transmission device (UITD, 用户信息传输装置) and the monitoring centre. Header-only, C++20,
// standard library only (plus glibc's iconv for GB18030 text), so that a vendor's driver can reuse it.
//
//     firelink::proto::gb26875::stream_decoder dec;
//     dec.feed(bytes);                                   // any chunks: split, merged, with garbage in between
//     while (auto item = dec.next()) {
//         if (item->ok()) use(item->frame);              // a frame whose delimiters, length and checksum are right
//         else deny_or_count(*item);                     // item->error says why; item->header when it was readable
//     }
//     auto app = parse_app_data(frame.data);             // typed information objects, or why they do not parse
//     auto bytes = encode(frame);                        // encode(decode(f)) == f for every valid frame
//
// The frame (all multi-byte numbers low byte first):
//     '@@' | serial 2 | version 2 (main, user) | time 6 (s m h D M Y) | source 6 | destination 6 | length 2 |
//     command 1 | application data (length <= 1024) | checksum 1 (low byte of the sum of serial..data) | '##'
#pragma once

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <iconv.h>

#include "gb26875/tables.hpp"

namespace firelink::proto::gb26875 {

inline constexpr std::size_t header_size = 27;        // '@@' through the command byte
inline constexpr std::size_t trailer_size = 3;        // checksum and '##'
inline constexpr std::size_t max_data_size = 1024;    // the standard's limit for the application data unit
inline constexpr std::size_t max_frame_size = header_size + max_data_size + trailer_size;
inline constexpr std::size_t description_size = 31;   // a component description: GB18030, NUL/space padded

// Command byte (控制单元 命令字节).
enum class command : std::uint8_t { control = 1, send = 2, confirm = 3, request = 4, response = 5, deny = 6 };

constexpr const char *command_name(std::uint8_t c) noexcept {
    switch (c) {
    case 1: return "control";
    case 2: return "send";
    case 3: return "confirm";
    case 4: return "request";
    case 5: return "response";
    case 6: return "deny";
    default: return c >= 128 ? "vendor" : "reserved";
    }
}

// A 6-byte time label: seconds, minutes, hours, day, month, year-2000, as sent. Devices send nonsense clocks; valid()
// says whether it names a real date and time (the device's local time).
struct timestamp {
    std::uint8_t second = 0, minute = 0, hour = 0, day = 1, month = 1, year = 0;

    bool valid() const noexcept {
        static constexpr std::uint8_t days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (second > 59 || minute > 59 || hour > 23 || month < 1 || month > 12 || day < 1 || year > 99) return false;
        if (day > days[month - 1]) return false;
        return !(month == 2 && day == 29 && year % 4 != 0);
    }
    // Seconds since 1970-01-01 00:00 of this time read as UTC (days-from-civil), or nullopt when not valid().
    // Subtract the device's UTC offset to get the real instant.
    std::optional<std::int64_t> as_utc_seconds() const noexcept {
        if (!valid()) return std::nullopt;
        const int y0 = 2000 + year - (month <= 2 ? 1 : 0);
        const int era = y0 / 400;  // y0 >= 1999: no negative eras
        const int yoe = y0 - era * 400;
        const int m = month;
        const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1;
        const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        const std::int64_t days_since = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
        return days_since * 86400 + hour * 3600 + minute * 60 + second;
    }
    // The time label of `utc_seconds + offset_seconds` (the device's local time); years 2000..2099.
    static timestamp from_utc_seconds(std::int64_t utc_seconds, std::int64_t offset_seconds = 0) noexcept {
        std::int64_t t = utc_seconds + offset_seconds;
        std::int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
        std::int64_t secs = t - days * 86400;
        days += 719468;
        const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
        const std::int64_t doe = days - era * 146097;
        const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        const std::int64_t mp = (5 * doy + 2) / 153;
        const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
        const std::int64_t m = mp + (mp < 10 ? 3 : -9);
        const std::int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
        timestamp ts;
        ts.second = static_cast<std::uint8_t>(secs % 60);
        ts.minute = static_cast<std::uint8_t>((secs / 60) % 60);
        ts.hour = static_cast<std::uint8_t>(secs / 3600);
        ts.day = static_cast<std::uint8_t>(d);
        ts.month = static_cast<std::uint8_t>(m);
        ts.year = static_cast<std::uint8_t>(((y - 2000) % 100 + 100) % 100);
        return ts;
    }
    bool operator==(const timestamp &) const = default;
};

// A 6-byte address as it is on the wire (low byte first).
using address = std::array<std::uint8_t, 6>;

constexpr address make_address(std::uint64_t value) noexcept {
    address a{};
    for (std::size_t i = 0; i < 6; ++i) a[i] = static_cast<std::uint8_t>(value >> (8 * i));
    return a;
}
constexpr std::uint64_t address_value(const address &a) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 6; i-- > 0;) v = (v << 8) | a[i];
    return v;
}
// The address as 12 upper-case hex digits, most significant first: 0x0379 is "000000000379". This is the identity a
// site file binds a UITD by (firelink.identify/1).
inline std::string address_text(const address &a) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string s;
    for (std::size_t i = 6; i-- > 0;) {
        s += hex[a[i] >> 4];
        s += hex[a[i] & 15];
    }
    return s;
}

struct header {
    std::uint16_t serial = 0;
    std::uint8_t version_main = 1;
    std::uint8_t version_user = 1;  // devices send all sorts: kept as sent, never checked
    timestamp time{};
    address source{};
    address destination{};
    std::uint8_t command = 0;
    bool operator==(const header &) const = default;
};

struct frame {
    header head;
    std::vector<std::uint8_t> data;  // the application data unit, raw (parse_app_data reads it)
    bool operator==(const frame &) const = default;
};

// Why bytes are not a frame. Every value has a fixed text (error_text) that names the field.
enum class frame_error {
    none,
    incomplete,        // fewer bytes than the frame needs (a stream decoder waits for more)
    bad_start,         // does not begin with '@@'
    length_too_large,  // the length field exceeds 1024
    bad_end,           // no '##' where the length says the frame ends
    bad_checksum,      // the checksum byte is not the low byte of the sum
    trailing_bytes,    // decode_frame: bytes after the '##'
};

constexpr const char *error_text(frame_error e) noexcept {
    switch (e) {
    case frame_error::none: return "ok";
    case frame_error::incomplete: return "incomplete frame";
    case frame_error::bad_start: return "bad start delimiter (expected '@@' = 40 40)";
    case frame_error::length_too_large: return "application data length exceeds 1024";
    case frame_error::bad_end: return "bad end delimiter (expected '##' = 23 23)";
    case frame_error::bad_checksum: return "checksum mismatch";
    case frame_error::trailing_bytes: return "bytes after the end delimiter";
    }
    return "invalid frame";
}

// The low byte of the sum of `bytes`.
inline std::uint8_t checksum(std::span<const std::uint8_t> bytes) noexcept {
    unsigned sum = 0;
    for (auto b : bytes) sum += b;
    return static_cast<std::uint8_t>(sum);
}

namespace detail {
inline std::uint16_t u16(const std::uint8_t *p) noexcept { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
inline std::uint32_t u32(const std::uint8_t *p) noexcept {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline void put16(std::vector<std::uint8_t> &o, std::uint16_t v) {
    o.push_back(static_cast<std::uint8_t>(v));
    o.push_back(static_cast<std::uint8_t>(v >> 8));
}
inline void put32(std::vector<std::uint8_t> &o, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) o.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline timestamp time_at(const std::uint8_t *p) noexcept { return {p[0], p[1], p[2], p[3], p[4], p[5]}; }
inline void put_time(std::vector<std::uint8_t> &o, const timestamp &t) {
    o.insert(o.end(), {t.second, t.minute, t.hour, t.day, t.month, t.year});
}
}  // namespace detail

// Reads the header from at least header_size bytes that begin with '@@' (no other checks).
inline header read_header(const std::uint8_t *p) noexcept {
    header h;
    h.serial = detail::u16(p + 2);
    h.version_main = p[4];
    h.version_user = p[5];
    h.time = detail::time_at(p + 6);
    std::memcpy(h.source.data(), p + 12, 6);
    std::memcpy(h.destination.data(), p + 18, 6);
    h.command = p[26];
    return h;
}

struct decoded {
    frame_error error = frame_error::none;
    std::optional<header> head;  // set whenever the header could be read (even with a bad checksum: deny it)
    frame value;                 // valid when error == none
    std::size_t size = 0;        // bytes the frame took (or would take), when known
    bool ok() const noexcept { return error == frame_error::none; }
};

// Decodes the frame at the start of `bytes` and reports its size; bytes after it are not looked at.
inline decoded decode_prefix(std::span<const std::uint8_t> bytes) {
    decoded r;
    if (bytes.size() >= 1 && bytes[0] != '@') return r.error = frame_error::bad_start, r;
    if (bytes.size() >= 2 && bytes[1] != '@') return r.error = frame_error::bad_start, r;
    if (bytes.size() < header_size) return r.error = frame_error::incomplete, r;
    const std::size_t len = detail::u16(bytes.data() + 24);
    r.head = read_header(bytes.data());
    if (len > max_data_size) return r.error = frame_error::length_too_large, r;
    r.size = header_size + len + trailer_size;
    if (bytes.size() < r.size) return r.error = frame_error::incomplete, r;
    if (bytes[r.size - 2] != '#' || bytes[r.size - 1] != '#') return r.error = frame_error::bad_end, r;
    if (checksum(bytes.subspan(2, header_size - 2 + len)) != bytes[header_size + len])
        return r.error = frame_error::bad_checksum, r;
    r.value.head = *r.head;
    r.value.data.assign(bytes.begin() + header_size, bytes.begin() + static_cast<std::ptrdiff_t>(header_size + len));
    return r;
}

// Decodes exactly one frame: bytes after its '##' are an error.
inline decoded decode_frame(std::span<const std::uint8_t> bytes) {
    decoded r = decode_prefix(bytes);
    if (r.ok() && bytes.size() != r.size) r.error = frame_error::trailing_bytes;
    return r;
}

inline std::vector<std::uint8_t> encode(const frame &f) {
    std::vector<std::uint8_t> o;
    o.reserve(header_size + f.data.size() + trailer_size);
    o.push_back('@');
    o.push_back('@');
    detail::put16(o, f.head.serial);
    o.push_back(f.head.version_main);
    o.push_back(f.head.version_user);
    detail::put_time(o, f.head.time);
    o.insert(o.end(), f.head.source.begin(), f.head.source.end());
    o.insert(o.end(), f.head.destination.begin(), f.head.destination.end());
    detail::put16(o, static_cast<std::uint16_t>(f.data.size()));
    o.push_back(f.head.command);
    o.insert(o.end(), f.data.begin(), f.data.end());
    o.push_back(checksum(std::span<const std::uint8_t>(o).subspan(2)));
    o.push_back('#');
    o.push_back('#');
    return o;
}

// The confirm (or deny) of a received frame: same serial and version, addresses swapped, no application data.
inline frame answer_to(const header &received, command answer, const timestamp &now) {
    frame f;
    f.head = received;
    f.head.time = now;
    f.head.source = received.destination;
    f.head.destination = received.source;
    f.head.command = static_cast<std::uint8_t>(answer);
    return f;
}

// Splits a byte stream into frames. Resynchronises on the next '@@' after garbage or a broken frame. A broken frame
// whose header was readable is reported with it (so that a bad checksum can be denied by serial number).
// Holds at most max_frame_size bytes of an unfinished frame: it never waits on more than one frame's worth.
class stream_decoder {
public:
    struct item {
        frame_error error = frame_error::none;
        std::optional<header> head;  // for a bad frame, when its header was readable
        frame value;                 // when ok()
        std::size_t skipped = 0;     // garbage bytes dropped before this item
        bool ok() const noexcept { return error == frame_error::none; }
    };

    void feed(std::span<const std::uint8_t> bytes) { buf_.insert(buf_.end(), bytes.begin(), bytes.end()); }

    // The next frame or bad frame, or nullopt when more bytes are needed.
    std::optional<item> next() {
        // Drop everything before the next '@@' (keep a lone trailing '@': it may start one).
        std::size_t start = pos_;
        while (start < buf_.size() && !(buf_[start] == '@' && (start + 1 == buf_.size() || buf_[start + 1] == '@')))
            ++start;
        pending_skip_ += start - pos_;
        skipped_total_ += start - pos_;
        pos_ = start;
        compact();
        const auto view = std::span<const std::uint8_t>(buf_).subspan(pos_);
        if (view.size() < 2) return std::nullopt;
        decoded d = decode_prefix(view);
        if (d.error == frame_error::incomplete) return std::nullopt;
        item it;
        it.skipped = pending_skip_;
        pending_skip_ = 0;
        if (d.ok()) {
            pos_ += d.size;
            it.value = std::move(d.value);
        } else {
            it.error = d.error;
            it.head = d.head;
            // A bad checksum inside good delimiters: drop the frame whole, unless another '@@' inside it may be the
            // real start (a false start must not swallow the frame that follows it). Otherwise skip one byte.
            std::size_t skip = 1;
            if (d.error == frame_error::bad_checksum) {
                skip = d.size;
                for (std::size_t i = 1; i + 1 < d.size; ++i)
                    if (view[i] == '@' && view[i + 1] == '@') skip = 1;
            }
            pos_ += skip;
        }
        compact();
        return it;
    }

    std::size_t skipped_total() const noexcept { return skipped_total_; }
    std::size_t buffered() const noexcept { return buf_.size() - pos_; }
    void reset() { buf_.clear(), pos_ = 0; }

private:
    void compact() {
        if (pos_ > 4096 || (pos_ > 0 && pos_ == buf_.size())) {
            buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
            pos_ = 0;
        }
    }

    std::vector<std::uint8_t> buf_;
    std::size_t pos_ = 0;
    std::size_t skipped_total_ = 0;
    std::size_t pending_skip_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Application data unit: type (类型标志) 1, object count 1, objects.

// 8-bit and 16-bit component address helpers: the standard gives 4 bytes; most panels put the loop (回路) in the low
// 16 bits and the point (地址号) in the high 16 bits.
struct component_ref {
    std::uint8_t system_type = 1;
    std::uint8_t system_address = 0;
    std::uint8_t component_type = 0;
    std::uint32_t component_address = 0;
    std::uint16_t loop() const noexcept { return static_cast<std::uint16_t>(component_address); }
    std::uint16_t point() const noexcept { return static_cast<std::uint16_t>(component_address >> 16); }
    bool operator==(const component_ref &) const = default;
};

// Type 1: 上传建筑消防设施系统状态.
struct system_status {
    std::uint8_t system_type = 1, system_address = 0;
    std::uint16_t status = 0;  // system_status_bits
    std::optional<timestamp> time;
    bool operator==(const system_status &) const = default;
};
// Type 2: 上传建筑消防设施部件运行状态. Type 7 (部件配置情况) is the same without status and time.
struct component_status {
    component_ref component;
    std::uint16_t status = 0;  // component_status_bits
    std::array<std::uint8_t, description_size> description{};  // raw GB18030; description_utf8() decodes it
    std::optional<timestamp> time;
    bool operator==(const component_status &) const = default;
};
struct component_config {
    component_ref component;
    std::array<std::uint8_t, description_size> description{};
    bool operator==(const component_config &) const = default;
};
// Type 3: 上传建筑消防设施部件模拟量值.
struct component_analog {
    component_ref component;
    std::uint8_t analog_type = 0;  // analog_types
    std::int16_t raw = 0;          // scaled by the analog type's resolution: analog_value()
    std::optional<timestamp> time;
    bool operator==(const component_analog &) const = default;
};
// Type 4: 上传建筑消防设施操作信息.
struct system_operation {
    std::uint8_t system_type = 1, system_address = 0;
    std::uint8_t flags = 0;  // system_operation_bits
    std::uint8_t operator_id = 0;
    std::optional<timestamp> time;
    bool operator==(const system_operation &) const = default;
};
// Type 5: 上传建筑消防设施软件版本.
struct system_version {
    std::uint8_t system_type = 1, system_address = 0, major = 0, minor = 0;
    bool operator==(const system_version &) const = default;
};
// Type 6: 上传建筑消防设施系统配置情况 (text of length L, GB18030).
struct system_config {
    std::uint8_t system_type = 1, system_address = 0;
    std::vector<std::uint8_t> text;
    bool operator==(const system_config &) const = default;
};
// Type 8: 上传建筑消防设施系统时间.
struct system_time {
    std::uint8_t system_type = 1, system_address = 0;
    timestamp time;
    bool operator==(const system_time &) const = default;
};
// Type 21: 上传用户信息传输装置运行状态.
struct uitd_status {
    std::uint8_t status = 0;  // uitd_status_bits
    std::optional<timestamp> time;
    bool operator==(const uitd_status &) const = default;
};
// Type 24: 上传用户信息传输装置操作信息.
struct uitd_operation {
    std::uint8_t flags = 0;  // uitd_operation_bits
    std::uint8_t operator_id = 0;
    std::optional<timestamp> time;
    bool operator==(const uitd_operation &) const = default;
};
// Type 25: 上传用户信息传输装置软件版本.
struct uitd_version {
    std::uint8_t major = 0, minor = 0;
    bool operator==(const uitd_version &) const = default;
};
// Type 26: 上传用户信息传输装置配置情况.
struct uitd_config {
    std::vector<std::uint8_t> text;
    bool operator==(const uitd_config &) const = default;
};
// Type 28: 上传用户信息传输装置系统时间; type 90: 同步用户信息传输装置时钟.
struct clock_value {
    timestamp time;
    bool operator==(const clock_value &) const = default;
};
// Types 61, 65, 66, 68: 读建筑消防设施系统状态/软件版本/系统配置/系统时间.
struct read_system {
    std::uint8_t system_type = 1, system_address = 0;
    bool operator==(const read_system &) const = default;
};
// Types 62, 63, 67: 读部件运行状态/模拟量值/部件配置.
struct read_component {
    std::uint8_t system_type = 1, system_address = 0;
    std::uint32_t component_address = 0;
    bool operator==(const read_component &) const = default;
};
// Type 64: 读建筑消防设施操作信息记录; type 84 (UITD) has no system fields.
struct read_records {
    std::uint8_t system_type = 1, system_address = 0;
    std::uint8_t count = 0;
    timestamp since;
    bool operator==(const read_records &) const = default;
};
// Types 81, 85, 86, 88, 89: a reserved byte only.
struct reserved_byte {
    std::uint8_t value = 0;
    bool operator==(const reserved_byte &) const = default;
};
// Type 91: 查岗命令, the operator must answer within `minutes`.
struct duty_check {
    std::uint8_t minutes = 0;
    bool operator==(const duty_check &) const = default;
};

using info_object = std::variant<system_status, component_status, component_analog, system_operation, system_version,
                                 system_config, component_config, system_time, uitd_status, uitd_operation,
                                 uitd_version, uitd_config, clock_value, read_system, read_component, read_records,
                                 reserved_byte, duty_check>;

struct app_data {
    std::uint8_t type = 0;
    std::uint8_t count = 0;              // as sent
    std::vector<info_object> objects;    // empty for raw types
    std::vector<std::uint8_t> raw;       // for vendor (128-255) and reserved types: the bytes after type and count
    bool known = true;                   // false: a vendor or reserved type, kept raw
    bool operator==(const app_data &) const = default;
};

struct app_result {
    std::optional<app_data> value;
    std::string error;  // why the application data does not parse, naming the type and the sizes
    bool ok() const noexcept { return value.has_value(); }
};

namespace detail {

// Fixed object sizes without and with the trailing time label; 0 = variable or not fixed. has_time: the time label
// is optional (tolerated missing); time_only: the time is the content and mandatory.
struct type_layout {
    std::size_t base = 0;
    bool optional_time = false;
    bool variable = false;
};

constexpr type_layout layout_of(std::uint8_t type) noexcept {
    switch (type) {
    case 1: return {4, true};
    case 2: return {40, true};
    case 3: return {10, true};
    case 4: return {4, true};
    case 5: return {4};
    case 6: return {0, false, true};
    case 7: return {38};
    case 8: return {8};
    case 21: return {1, true};
    case 24: return {2, true};
    case 25: return {2};
    case 26: return {0, false, true};
    case 28: return {6};
    case 61: case 65: case 66: case 68: return {2};
    case 62: case 63: case 67: return {6};
    case 64: return {9};
    case 84: return {7};
    case 81: case 85: case 86: case 88: case 89: return {1};
    case 90: return {6};
    case 91: return {1};
    default: return {};
    }
}

inline component_ref comp_at(const std::uint8_t *p) noexcept { return {p[0], p[1], p[2], u32(p + 3)}; }
inline void put_comp(std::vector<std::uint8_t> &o, const component_ref &c) {
    o.push_back(c.system_type);
    o.push_back(c.system_address);
    o.push_back(c.component_type);
    put32(o, c.component_address);
}

inline info_object read_object(std::uint8_t type, const std::uint8_t *p, bool with_time) {
    auto t = [&](std::size_t at) { return with_time ? std::optional<timestamp>(time_at(p + at)) : std::nullopt; };
    switch (type) {
    case 1: return system_status{p[0], p[1], u16(p + 2), t(4)};
    case 2: {
        component_status c{comp_at(p), u16(p + 7), {}, t(40)};
        std::memcpy(c.description.data(), p + 9, description_size);
        return c;
    }
    case 3: return component_analog{comp_at(p), p[7], static_cast<std::int16_t>(u16(p + 8)), t(10)};
    case 4: return system_operation{p[0], p[1], p[2], p[3], t(4)};
    case 5: return system_version{p[0], p[1], p[2], p[3]};
    case 7: {
        component_config c{comp_at(p), {}};
        std::memcpy(c.description.data(), p + 7, description_size);
        return c;
    }
    case 8: return system_time{p[0], p[1], time_at(p + 2)};
    case 21: return uitd_status{p[0], t(1)};
    case 24: return uitd_operation{p[0], p[1], t(2)};
    case 25: return uitd_version{p[0], p[1]};
    case 28: case 90: return clock_value{time_at(p)};
    case 61: case 65: case 66: case 68: return read_system{p[0], p[1]};
    case 62: case 63: case 67: return read_component{p[0], p[1], u32(p + 2)};
    case 64: return read_records{p[0], p[1], p[2], time_at(p + 3)};
    case 84: return read_records{0, 0, p[0], time_at(p + 1)};
    case 91: return duty_check{p[0]};
    default: return reserved_byte{p[0]};  // 81, 85, 86, 88, 89
    }
}

}  // namespace detail

// Parses an application data unit. Fixed-size objects may come without their time label (real devices do that):
// the whole unit is read one way or the other, chosen by its length. Vendor (128-255) and reserved types are kept raw.
inline app_result parse_app_data(std::span<const std::uint8_t> data) {
    app_result r;
    if (data.size() < 2) {
        r.error = data.empty() ? "no application data" : "application data of 1 byte (needs type and object count)";
        return r;
    }
    app_data a;
    a.type = data[0];
    a.count = data[1];
    const auto body = data.subspan(2);
    const std::string type_label = "type " + std::to_string(a.type);
    if (!type_info(a.type).known) {
        a.known = false;
        a.raw.assign(body.begin(), body.end());
        r.value = std::move(a);
        return r;
    }
    const auto layout = detail::layout_of(a.type);
    if (layout.variable) {
        std::size_t at = 0;
        const std::size_t prefix = a.type == 6 ? 3 : 1;  // type 6: system type, address, L; type 26: L
        for (unsigned i = 0; i < a.count; ++i) {
            if (body.size() - at < prefix) {
                r.error = type_label + ": object " + std::to_string(i + 1) + " of " + std::to_string(a.count) +
                          " is cut off (" + std::to_string(body.size() - at) + " bytes left)";
                return r;
            }
            const std::size_t len = body[at + prefix - 1];
            if (body.size() - at - prefix < len) {
                r.error = type_label + ": object " + std::to_string(i + 1) + " says " + std::to_string(len) +
                          " bytes of text, " + std::to_string(body.size() - at - prefix) + " left";
                return r;
            }
            std::vector<std::uint8_t> text(body.begin() + static_cast<std::ptrdiff_t>(at + prefix),
                                           body.begin() + static_cast<std::ptrdiff_t>(at + prefix + len));
            if (a.type == 6) a.objects.push_back(system_config{body[at], body[at + 1], std::move(text)});
            else a.objects.push_back(uitd_config{std::move(text)});
            at += prefix + len;
        }
        if (at != body.size()) {
            r.error = type_label + ": " + std::to_string(body.size() - at) + " bytes after the last object";
            return r;
        }
        r.value = std::move(a);
        return r;
    }
    const std::size_t with = layout.base + (layout.optional_time ? 6 : 0);
    bool has_time;
    if (body.size() == a.count * with) has_time = layout.optional_time;
    else if (layout.optional_time && body.size() == a.count * layout.base) has_time = false;
    else {
        r.error = type_label + ": " + std::to_string(body.size()) + " bytes do not hold " + std::to_string(a.count) +
                  " object(s) of " + std::to_string(with) + " bytes" +
                  (layout.optional_time ? " (or " + std::to_string(layout.base) + " without the time label)" : "");
        return r;
    }
    const std::size_t step = has_time ? with : layout.base;
    for (unsigned i = 0; i < a.count; ++i) a.objects.push_back(detail::read_object(a.type, body.data() + i * step, has_time));
    r.value = std::move(a);
    return r;
}

// Encodes an application data unit: parse_app_data's inverse (the count is recomputed for known types).
inline std::vector<std::uint8_t> encode_app_data(const app_data &a) {
    using namespace detail;
    std::vector<std::uint8_t> o{a.type, a.known ? static_cast<std::uint8_t>(a.objects.size()) : a.count};
    if (!a.known) {
        o.insert(o.end(), a.raw.begin(), a.raw.end());
        return o;
    }
    auto opt_time = [&](const std::optional<timestamp> &t) {
        if (t) put_time(o, *t);
    };
    for (const auto &obj : a.objects) {
        std::visit(
            [&](const auto &v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, system_status>) {
                    o.insert(o.end(), {v.system_type, v.system_address});
                    put16(o, v.status);
                    opt_time(v.time);
                } else if constexpr (std::is_same_v<T, component_status>) {
                    put_comp(o, v.component);
                    put16(o, v.status);
                    o.insert(o.end(), v.description.begin(), v.description.end());
                    opt_time(v.time);
                } else if constexpr (std::is_same_v<T, component_config>) {
                    put_comp(o, v.component);
                    o.insert(o.end(), v.description.begin(), v.description.end());
                } else if constexpr (std::is_same_v<T, component_analog>) {
                    put_comp(o, v.component);
                    o.push_back(v.analog_type);
                    put16(o, static_cast<std::uint16_t>(v.raw));
                    opt_time(v.time);
                } else if constexpr (std::is_same_v<T, system_operation>) {
                    o.insert(o.end(), {v.system_type, v.system_address, v.flags, v.operator_id});
                    opt_time(v.time);
                } else if constexpr (std::is_same_v<T, system_version>) {
                    o.insert(o.end(), {v.system_type, v.system_address, v.major, v.minor});
                } else if constexpr (std::is_same_v<T, system_config>) {
                    o.insert(o.end(), {v.system_type, v.system_address, static_cast<std::uint8_t>(v.text.size())});
                    o.insert(o.end(), v.text.begin(), v.text.end());
                } else if constexpr (std::is_same_v<T, system_time>) {
                    o.insert(o.end(), {v.system_type, v.system_address});
                    put_time(o, v.time);
                } else if constexpr (std::is_same_v<T, uitd_status>) {
                    o.push_back(v.status);
                    opt_time(v.time);
                } else if constexpr (std::is_same_v<T, uitd_operation>) {
                    o.insert(o.end(), {v.flags, v.operator_id});
                    opt_time(v.time);
                } else if constexpr (std::is_same_v<T, uitd_version>) {
                    o.insert(o.end(), {v.major, v.minor});
                } else if constexpr (std::is_same_v<T, uitd_config>) {
                    o.push_back(static_cast<std::uint8_t>(v.text.size()));
                    o.insert(o.end(), v.text.begin(), v.text.end());
                } else if constexpr (std::is_same_v<T, clock_value>) {
                    put_time(o, v.time);
                } else if constexpr (std::is_same_v<T, read_system>) {
                    o.insert(o.end(), {v.system_type, v.system_address});
                } else if constexpr (std::is_same_v<T, read_component>) {
                    o.insert(o.end(), {v.system_type, v.system_address});
                    put32(o, v.component_address);
                } else if constexpr (std::is_same_v<T, read_records>) {
                    if (a.type != 84) o.insert(o.end(), {v.system_type, v.system_address});
                    o.push_back(v.count);
                    put_time(o, v.since);
                } else if constexpr (std::is_same_v<T, reserved_byte>) {
                    o.push_back(v.value);
                } else if constexpr (std::is_same_v<T, duty_check>) {
                    o.push_back(v.minutes);
                }
            },
            obj);
    }
    return o;
}

// A one-object application data unit.
inline std::vector<std::uint8_t> make_app_data(std::uint8_t type, info_object obj) {
    app_data a;
    a.type = type;
    a.objects.push_back(std::move(obj));
    return encode_app_data(a);
}

// ---------------------------------------------------------------------------------------------------------------
// Text: GB18030 to UTF-8 and back, with glibc's iconv. Invalid input becomes U+FFFD, never an error.

inline std::string convert_text(std::span<const std::uint8_t> in, const char *to, const char *from,
                                 std::string_view replacement) {
    std::string out;
    iconv_t cd = iconv_open(to, from);
    if (cd == reinterpret_cast<iconv_t>(-1)) {
        // No converter: keep ASCII, replace the rest.
        for (auto b : in) out += b < 0x80 ? std::string(1, static_cast<char>(b)) : std::string(replacement);
        return out;
    }
    auto *src = const_cast<char *>(reinterpret_cast<const char *>(in.data()));
    std::size_t left = in.size();
    char chunk[256];
    while (left > 0) {
        char *dst = chunk;
        std::size_t room = sizeof chunk;
        const std::size_t rc = iconv(cd, &src, &left, &dst, &room);
        out.append(chunk, static_cast<std::size_t>(dst - chunk));
        if (rc == static_cast<std::size_t>(-1)) {
            if (errno == E2BIG) continue;
            // EILSEQ or EINVAL (truncated sequence at the end): replace one byte and go on.
            out += replacement;
            ++src;
            --left;
            iconv(cd, nullptr, nullptr, nullptr, nullptr);
        }
    }
    iconv_close(cd);
    return out;
}

inline std::string gb18030_to_utf8(std::span<const std::uint8_t> in) {
    return convert_text(in, "UTF-8", "GB18030", "\xEF\xBF\xBD");
}
inline std::vector<std::uint8_t> utf8_to_gb18030(std::string_view in) {
    const std::string s = convert_text(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t *>(in.data()),
                                                                     in.size()),
                                       "GB18030", "UTF-8", "?");
    return {s.begin(), s.end()};
}

// A component description as UTF-8: up to the first NUL, trailing spaces trimmed.
inline std::string description_utf8(const std::array<std::uint8_t, description_size> &d) {
    std::size_t n = 0;
    while (n < d.size() && d[n] != 0) ++n;
    while (n > 0 && d[n - 1] == ' ') --n;
    return gb18030_to_utf8(std::span<const std::uint8_t>(d.data(), n));
}
// A description field from UTF-8: GB18030, cut at a character boundary to fit 30 bytes, NUL-terminated and padded.
inline std::array<std::uint8_t, description_size> make_description(std::string_view utf8) {
    std::array<std::uint8_t, description_size> d{};
    auto bytes = utf8_to_gb18030(utf8);
    std::size_t n = 0;
    while (n < bytes.size()) {
        // GB18030: ASCII is 1 byte; a lead byte 0x81-0xFE starts 2 bytes, or 4 when the second is 0x30-0x39.
        std::size_t w = bytes[n] < 0x80 ? 1 : (n + 1 < bytes.size() && bytes[n + 1] >= 0x30 && bytes[n + 1] <= 0x39 ? 4 : 2);
        if (n + w > description_size - 1) break;
        n += w;
    }
    std::memcpy(d.data(), bytes.data(), n);
    return d;
}

// The engineering value of an analog object: raw times the type's resolution.
inline double analog_value(const component_analog &a) { return a.raw * analog_info(a.analog_type).resolution; }

}  // namespace firelink::proto::gb26875
