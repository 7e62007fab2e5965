// firelink vendor kit: a Modbus codec, header-only, standard library only.
//
//     namespace mb = firelink::proto::modbus;
//     auto pdu   = mb::encode_request(mb::read_registers(mb::fc::read_input_registers, 0, 4));
//     auto frame = mb::rtu_frame(unit, pdu);                       // unit, PDU, CRC-16 (low byte first)
//     ...
//     mb::rtu_stream in{mb::direction::response};                  // bytes from the wire, in chunks of any size
//     in.feed(bytes);
//     while (auto adu = in.next()) { auto rsp = mb::decode_response(adu->pdu); ... }
//
// What it covers (Modbus Application Protocol v1.1b3, Modbus over Serial Line v1.02):
//   - PDUs of function codes 1-6, 15 and 16, requests and responses, and exception responses (function | 0x80);
//     every quantity, byte count and coil value is checked against the specification's limits;
//   - RTU framing: CRC-16, frame length derived from the function code, resynchronisation over a byte stream that
//     splits, merges or garbles frames, and a silent interval (3.5 characters) that discards a partial frame;
//   - TCP framing: the MBAP header (transaction, protocol 0, length, unit) over a byte stream;
//   - register_bank: a slave's data model that serves request PDUs (for simulators and tests).
// Every decoder returns a value or an error whose message says precisely what is wrong; none throws on bad input,
// none reads past its input, none allocates more than its input justifies.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace firelink::proto::modbus {

// ---- function codes, exception codes, limits ---------------------------------------------------------------------

namespace fc {
inline constexpr std::uint8_t read_coils = 0x01;
inline constexpr std::uint8_t read_discrete_inputs = 0x02;
inline constexpr std::uint8_t read_holding_registers = 0x03;
inline constexpr std::uint8_t read_input_registers = 0x04;
inline constexpr std::uint8_t write_single_coil = 0x05;
inline constexpr std::uint8_t write_single_register = 0x06;
inline constexpr std::uint8_t write_multiple_coils = 0x0F;
inline constexpr std::uint8_t write_multiple_registers = 0x10;
inline constexpr std::uint8_t exception_bit = 0x80;
}  // namespace fc

constexpr bool is_supported_function(std::uint8_t f) noexcept {
    return (f >= fc::read_coils && f <= fc::write_single_register) || f == fc::write_multiple_coils ||
           f == fc::write_multiple_registers;
}
constexpr bool is_read_bits(std::uint8_t f) noexcept { return f == fc::read_coils || f == fc::read_discrete_inputs; }
constexpr bool is_read_registers(std::uint8_t f) noexcept {
    return f == fc::read_holding_registers || f == fc::read_input_registers;
}

constexpr const char *function_name(std::uint8_t f) noexcept {
    switch (f & 0x7F) {
    case fc::read_coils: return "read_coils";
    case fc::read_discrete_inputs: return "read_discrete_inputs";
    case fc::read_holding_registers: return "read_holding_registers";
    case fc::read_input_registers: return "read_input_registers";
    case fc::write_single_coil: return "write_single_coil";
    case fc::write_single_register: return "write_single_register";
    case fc::write_multiple_coils: return "write_multiple_coils";
    case fc::write_multiple_registers: return "write_multiple_registers";
    default: return "unsupported";
    }
}

namespace exception_code {
inline constexpr std::uint8_t illegal_function = 0x01;
inline constexpr std::uint8_t illegal_data_address = 0x02;
inline constexpr std::uint8_t illegal_data_value = 0x03;
inline constexpr std::uint8_t server_device_failure = 0x04;
inline constexpr std::uint8_t acknowledge = 0x05;
inline constexpr std::uint8_t server_device_busy = 0x06;
inline constexpr std::uint8_t memory_parity_error = 0x08;
inline constexpr std::uint8_t gateway_path_unavailable = 0x0A;
inline constexpr std::uint8_t gateway_target_failed = 0x0B;
}  // namespace exception_code

constexpr const char *exception_name(std::uint8_t code) noexcept {
    switch (code) {
    case exception_code::illegal_function: return "illegal_function";
    case exception_code::illegal_data_address: return "illegal_data_address";
    case exception_code::illegal_data_value: return "illegal_data_value";
    case exception_code::server_device_failure: return "server_device_failure";
    case exception_code::acknowledge: return "acknowledge";
    case exception_code::server_device_busy: return "server_device_busy";
    case exception_code::memory_parity_error: return "memory_parity_error";
    case exception_code::gateway_path_unavailable: return "gateway_path_unavailable";
    case exception_code::gateway_target_failed: return "gateway_target_failed";
    default: return "unknown_exception";
    }
}

// The specification's limits (Modbus Application Protocol v1.1b3, section 6).
inline constexpr std::uint16_t max_read_bits = 2000;
inline constexpr std::uint16_t max_read_registers = 125;
inline constexpr std::uint16_t max_write_bits = 1968;
inline constexpr std::uint16_t max_write_registers = 123;
inline constexpr std::size_t max_pdu_size = 253;
inline constexpr std::size_t max_rtu_frame_size = 256;  // unit + PDU + CRC
inline constexpr std::size_t mbap_header_size = 7;
inline constexpr std::size_t max_tcp_frame_size = 260;  // MBAP + PDU

// ---- errors and results ------------------------------------------------------------------------------------------

enum class errc {
    truncated,        // fewer bytes than the frame or PDU needs
    length,           // a length that cannot be: a frame too long, a byte count that disagrees with the bytes
    crc,              // RTU CRC-16 mismatch
    function,         // a function code this codec does not support
    quantity,         // a quantity outside the specification's limits
    value,            // a value the specification does not allow (a coil value other than 0x0000/0xFF00)
    protocol,         // MBAP protocol id other than 0
    mismatch,         // a response that does not answer the request it was matched with
};

constexpr const char *errc_name(errc e) noexcept {
    switch (e) {
    case errc::truncated: return "truncated";
    case errc::length: return "length";
    case errc::crc: return "crc";
    case errc::function: return "function";
    case errc::quantity: return "quantity";
    case errc::value: return "value";
    case errc::protocol: return "protocol";
    case errc::mismatch: return "mismatch";
    }
    return "unknown";
}

struct error {
    errc code;
    std::string message;
};

// A value or an error; no exceptions on bad input.
template <class T>
class result {
public:
    result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
    result(error e) : v_(std::move(e)) {}       // NOLINT
    explicit operator bool() const noexcept { return v_.index() == 0; }
    bool ok() const noexcept { return v_.index() == 0; }
    const T &value() const & { return std::get<0>(v_); }
    T &value() & { return std::get<0>(v_); }
    T &&value() && { return std::get<0>(std::move(v_)); }
    const T *operator->() const { return &std::get<0>(v_); }
    const T &operator*() const & { return std::get<0>(v_); }
    const error &err() const { return std::get<1>(v_); }

private:
    std::variant<T, error> v_;
};

namespace detail {
// Only for the hex formats below ("%02lx", "%04lx").
inline std::string fmt(const char *f, long a) {
    char buf[32];
    std::snprintf(buf, sizeof buf, f, a);
    return buf;
}
inline std::uint16_t be16(const std::uint8_t *p) noexcept { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
inline void put16(std::vector<std::uint8_t> &out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v & 0xFF));
}
}  // namespace detail

// ---- CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), table-driven ----------------------------------------

namespace detail {
constexpr std::array<std::uint16_t, 256> make_crc_table() {
    std::array<std::uint16_t, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        std::uint16_t c = static_cast<std::uint16_t>(i);
        for (int k = 0; k < 8; ++k) c = (c & 1) ? static_cast<std::uint16_t>((c >> 1) ^ 0xA001) : static_cast<std::uint16_t>(c >> 1);
        t[i] = c;
    }
    return t;
}
inline constexpr auto crc_table = make_crc_table();
}  // namespace detail

constexpr std::uint16_t crc16(std::span<const std::uint8_t> bytes) noexcept {
    std::uint16_t crc = 0xFFFF;
    for (auto b : bytes) crc = static_cast<std::uint16_t>((crc >> 8) ^ detail::crc_table[(crc ^ b) & 0xFF]);
    return crc;
}

// ---- PDUs --------------------------------------------------------------------------------------------------------

// A request. Reads: address + quantity. Single writes: quantity 1 and one value in bits or registers. Multiple
// writes: quantity = the number of values.
struct request {
    std::uint8_t function = 0;
    std::uint16_t address = 0;
    std::uint16_t quantity = 0;
    std::vector<bool> bits;                // write_single_coil, write_multiple_coils
    std::vector<std::uint16_t> registers;  // write_single_register, write_multiple_registers
};

// A response. `exception` is set for an exception response (function is then the request's, without 0x80).
// Reads of bits give 8 x byte count bits (the padding of the last byte included: the request says how many count).
struct response {
    std::uint8_t function = 0;
    std::optional<std::uint8_t> exception;
    std::vector<bool> bits;
    std::vector<std::uint16_t> registers;
    std::uint16_t address = 0;   // writes: the echoed address
    std::uint16_t quantity = 0;  // multiple writes: the echoed quantity; single writes: 1
};

inline request read_bits(std::uint8_t function, std::uint16_t address, std::uint16_t quantity) {
    return request{function, address, quantity, {}, {}};
}
inline request read_registers(std::uint8_t function, std::uint16_t address, std::uint16_t quantity) {
    return request{function, address, quantity, {}, {}};
}
inline request write_coil(std::uint16_t address, bool on) { return request{fc::write_single_coil, address, 1, {on}, {}}; }
inline request write_register(std::uint16_t address, std::uint16_t value) {
    return request{fc::write_single_register, address, 1, {}, {value}};
}
inline request write_coils(std::uint16_t address, std::vector<bool> bits) {
    const auto n = static_cast<std::uint16_t>(bits.size());
    return request{fc::write_multiple_coils, address, n, std::move(bits), {}};
}
inline request write_registers(std::uint16_t address, std::vector<std::uint16_t> regs) {
    const auto n = static_cast<std::uint16_t>(regs.size());
    return request{fc::write_multiple_registers, address, n, {}, std::move(regs)};
}

namespace detail {
inline void pack_bits(std::vector<std::uint8_t> &out, const std::vector<bool> &bits) {
    const std::size_t bytes = (bits.size() + 7) / 8;
    const std::size_t at = out.size();
    out.resize(at + bytes, 0);
    for (std::size_t i = 0; i < bits.size(); ++i)
        if (bits[i]) out[at + i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
}
inline std::vector<bool> unpack_bits(const std::uint8_t *p, std::size_t bytes) {
    std::vector<bool> bits(bytes * 8);
    for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = (p[i / 8] >> (i % 8)) & 1;
    return bits;
}
inline std::optional<error> check_range(std::uint8_t f, std::uint16_t address, std::uint16_t quantity) {
    std::uint16_t max = 0;
    switch (f) {
    case fc::read_coils:
    case fc::read_discrete_inputs: max = max_read_bits; break;
    case fc::read_holding_registers:
    case fc::read_input_registers: max = max_read_registers; break;
    case fc::write_multiple_coils: max = max_write_bits; break;
    case fc::write_multiple_registers: max = max_write_registers; break;
    default: return std::nullopt;
    }
    if (quantity < 1 || quantity > max)
        return error{errc::quantity, std::string(function_name(f)) + ": quantity " + std::to_string(quantity) +
                                         " is outside 1.." + std::to_string(max)};
    if (static_cast<std::uint32_t>(address) + quantity > 0x10000u)
        return error{errc::quantity, std::string(function_name(f)) + ": address " + std::to_string(address) +
                                         " + quantity " + std::to_string(quantity) + " runs past 65535"};
    return std::nullopt;
}
}  // namespace detail

// Encodes a request PDU. Returns an error for a request that breaks the specification's limits.
inline result<std::vector<std::uint8_t>> encode_request(const request &r) {
    if (!is_supported_function(r.function))
        return error{errc::function, "unsupported function code " + std::to_string(r.function)};
    if (auto e = detail::check_range(r.function, r.address, r.quantity)) return *e;
    std::vector<std::uint8_t> out{r.function};
    detail::put16(out, r.address);
    switch (r.function) {
    case fc::write_single_coil:
        if (r.bits.size() != 1) return error{errc::quantity, "write_single_coil: needs exactly one value"};
        detail::put16(out, r.bits[0] ? 0xFF00 : 0x0000);
        break;
    case fc::write_single_register:
        if (r.registers.size() != 1) return error{errc::quantity, "write_single_register: needs exactly one value"};
        detail::put16(out, r.registers[0]);
        break;
    case fc::write_multiple_coils:
        if (r.bits.size() != r.quantity) return error{errc::quantity, "write_multiple_coils: quantity != values"};
        detail::put16(out, r.quantity);
        out.push_back(static_cast<std::uint8_t>((r.quantity + 7) / 8));
        detail::pack_bits(out, r.bits);
        break;
    case fc::write_multiple_registers:
        if (r.registers.size() != r.quantity) return error{errc::quantity, "write_multiple_registers: quantity != values"};
        detail::put16(out, r.quantity);
        out.push_back(static_cast<std::uint8_t>(r.quantity * 2));
        for (auto v : r.registers) detail::put16(out, v);
        break;
    default: detail::put16(out, r.quantity); break;
    }
    return out;
}

// Decodes a request PDU (function code first). The error says which rule it breaks.
inline result<request> decode_request(std::span<const std::uint8_t> pdu) {
    using detail::be16;
    if (pdu.empty()) return error{errc::truncated, "empty PDU"};
    if (pdu.size() > max_pdu_size)
        return error{errc::length, "PDU of " + std::to_string(pdu.size()) + " bytes exceeds 253"};
    const std::uint8_t f = pdu[0];
    if (!is_supported_function(f))
        return error{errc::function, "unsupported function code " + std::to_string(f) + " (0x" +
                                         detail::fmt("%02lx", f) + "); supported: 1-6, 15, 16"};
    const std::string name = function_name(f);
    request r;
    r.function = f;
    if (f == fc::write_multiple_coils || f == fc::write_multiple_registers) {
        if (pdu.size() < 6)
            return error{errc::truncated, name + ": PDU of " + std::to_string(pdu.size()) + " bytes, need at least 6"};
        r.address = be16(&pdu[1]);
        r.quantity = be16(&pdu[3]);
        if (auto e = detail::check_range(f, r.address, r.quantity)) return *e;
        const std::size_t want = f == fc::write_multiple_coils ? (r.quantity + 7u) / 8u : r.quantity * 2u;
        if (pdu[5] != want)
            return error{errc::length, name + ": byte count " + std::to_string(pdu[5]) + " does not match quantity " +
                                           std::to_string(r.quantity) + " (expected " + std::to_string(want) + ")"};
        if (pdu.size() != 6 + want)
            return error{errc::length, name + ": PDU of " + std::to_string(pdu.size()) + " bytes, byte count says " +
                                           std::to_string(6 + want)};
        if (f == fc::write_multiple_coils) {
            r.bits = detail::unpack_bits(&pdu[6], want);
            r.bits.resize(r.quantity);
        } else {
            for (std::size_t i = 0; i < r.quantity; ++i) r.registers.push_back(be16(&pdu[6 + 2 * i]));
        }
        return r;
    }
    if (pdu.size() != 5)
        return error{pdu.size() < 5 ? errc::truncated : errc::length,
                     name + ": PDU of " + std::to_string(pdu.size()) + " bytes, expected 5"};
    r.address = be16(&pdu[1]);
    const std::uint16_t v = be16(&pdu[3]);
    if (f == fc::write_single_coil) {
        if (v != 0xFF00 && v != 0x0000)
            return error{errc::value, "write_single_coil: value 0x" + detail::fmt("%04lx", v) + " is neither 0xFF00 nor 0x0000"};
        r.quantity = 1;
        r.bits = {v == 0xFF00};
    } else if (f == fc::write_single_register) {
        r.quantity = 1;
        r.registers = {v};
    } else {
        r.quantity = v;
        if (auto e = detail::check_range(f, r.address, r.quantity)) return *e;
    }
    return r;
}

inline std::vector<std::uint8_t> encode_exception(std::uint8_t function, std::uint8_t code) {
    return {static_cast<std::uint8_t>((function & 0x7F) | fc::exception_bit), code};
}

// Encodes a response PDU. For reads, fill bits (any count: padded to whole bytes) or registers.
inline result<std::vector<std::uint8_t>> encode_response(const response &r) {
    if (!is_supported_function(r.function))
        return error{errc::function, "unsupported function code " + std::to_string(r.function)};
    if (r.exception) return encode_exception(r.function, *r.exception);
    std::vector<std::uint8_t> out{r.function};
    if (is_read_bits(r.function)) {
        const std::size_t bytes = (r.bits.size() + 7) / 8;
        if (bytes < 1 || bytes > 250) return error{errc::quantity, "read response: 1..2000 bits"};
        out.push_back(static_cast<std::uint8_t>(bytes));
        detail::pack_bits(out, r.bits);
    } else if (is_read_registers(r.function)) {
        if (r.registers.empty() || r.registers.size() > max_read_registers)
            return error{errc::quantity, "read response: 1..125 registers"};
        out.push_back(static_cast<std::uint8_t>(r.registers.size() * 2));
        for (auto v : r.registers) detail::put16(out, v);
    } else if (r.function == fc::write_single_coil) {
        detail::put16(out, r.address);
        detail::put16(out, !r.bits.empty() && r.bits[0] ? 0xFF00 : 0x0000);
    } else if (r.function == fc::write_single_register) {
        detail::put16(out, r.address);
        detail::put16(out, r.registers.empty() ? 0 : r.registers[0]);
    } else {
        detail::put16(out, r.address);
        detail::put16(out, r.quantity);
    }
    return out;
}

// Decodes a response PDU on its own (without the request: a bit read then has 8 x byte count bits).
inline result<response> decode_response(std::span<const std::uint8_t> pdu) {
    using detail::be16;
    if (pdu.empty()) return error{errc::truncated, "empty PDU"};
    if (pdu.size() > max_pdu_size)
        return error{errc::length, "PDU of " + std::to_string(pdu.size()) + " bytes exceeds 253"};
    response r;
    const std::uint8_t f = pdu[0] & 0x7F;
    if (!is_supported_function(f))
        return error{errc::function, "unsupported function code " + std::to_string(pdu[0]) + " (0x" +
                                         detail::fmt("%02lx", pdu[0]) + "); supported: 1-6, 15, 16 (+0x80 for exceptions)"};
    r.function = f;
    const std::string name = function_name(f);
    if (pdu[0] & fc::exception_bit) {
        if (pdu.size() != 2)
            return error{pdu.size() < 2 ? errc::truncated : errc::length,
                         name + " exception: PDU of " + std::to_string(pdu.size()) + " bytes, expected 2"};
        r.exception = pdu[1];
        return r;
    }
    if (is_read_bits(f) || is_read_registers(f)) {
        if (pdu.size() < 2) return error{errc::truncated, name + " response: no byte count"};
        const std::size_t n = pdu[1];
        if (pdu.size() != 2 + n)
            return error{pdu.size() < 2 + n ? errc::truncated : errc::length,
                         name + " response: byte count " + std::to_string(n) + " but " + std::to_string(pdu.size() - 2) +
                             " data bytes"};
        if (n == 0) return error{errc::length, name + " response: byte count 0"};
        if (is_read_bits(f)) {
            r.bits = detail::unpack_bits(&pdu[2], n);
        } else {
            if (n % 2) return error{errc::length, name + " response: odd byte count " + std::to_string(n)};
            for (std::size_t i = 0; i < n / 2; ++i) r.registers.push_back(be16(&pdu[2 + 2 * i]));
        }
        r.quantity = static_cast<std::uint16_t>(is_read_bits(f) ? n * 8 : n / 2);
        return r;
    }
    if (pdu.size() != 5)
        return error{pdu.size() < 5 ? errc::truncated : errc::length,
                     name + " response: PDU of " + std::to_string(pdu.size()) + " bytes, expected 5"};
    r.address = be16(&pdu[1]);
    const std::uint16_t v = be16(&pdu[3]);
    if (f == fc::write_single_coil) {
        if (v != 0xFF00 && v != 0x0000)
            return error{errc::value, "write_single_coil response: value 0x" + detail::fmt("%04lx", v) +
                                          " is neither 0xFF00 nor 0x0000"};
        r.quantity = 1;
        r.bits = {v == 0xFF00};
    } else if (f == fc::write_single_register) {
        r.quantity = 1;
        r.registers = {v};
    } else {
        r.quantity = v;
    }
    return r;
}

// Checks that `rsp` answers `req` (an exception answers any request of its function). For bit reads it trims the
// padding so that rsp.bits has exactly req.quantity entries.
inline std::optional<error> match_response(const request &req, response &rsp) {
    const std::string name = function_name(req.function);
    if (rsp.function != req.function)
        return error{errc::mismatch, "response to " + std::string(function_name(rsp.function)) + " does not answer " + name};
    if (rsp.exception) return std::nullopt;
    if (is_read_bits(req.function)) {
        if (rsp.bits.size() / 8 != (req.quantity + 7u) / 8u)
            return error{errc::mismatch, name + ": " + std::to_string(rsp.bits.size() / 8) + " data bytes for " +
                                             std::to_string(req.quantity) + " bits"};
        rsp.bits.resize(req.quantity);
        return std::nullopt;
    }
    if (is_read_registers(req.function)) {
        if (rsp.registers.size() != req.quantity)
            return error{errc::mismatch, name + ": " + std::to_string(rsp.registers.size()) + " registers for a request of " +
                                             std::to_string(req.quantity)};
        return std::nullopt;
    }
    bool same = rsp.address == req.address;
    if (req.function == fc::write_single_coil) same = same && !rsp.bits.empty() && rsp.bits[0] == req.bits.at(0);
    else if (req.function == fc::write_single_register) same = same && !rsp.registers.empty() && rsp.registers[0] == req.registers.at(0);
    else same = same && rsp.quantity == req.quantity;
    if (!same) return error{errc::mismatch, name + ": the echo does not repeat the request"};
    return std::nullopt;
}

// ---- ADUs: RTU and TCP frames ------------------------------------------------------------------------------------

struct adu {
    std::uint8_t unit = 0;
    std::uint16_t transaction = 0;  // TCP only
    std::vector<std::uint8_t> pdu;
};

// unit, PDU, CRC-16 low byte first.
inline std::vector<std::uint8_t> rtu_frame(std::uint8_t unit, std::span<const std::uint8_t> pdu) {
    std::vector<std::uint8_t> out;
    out.reserve(pdu.size() + 3);
    out.push_back(unit);
    out.insert(out.end(), pdu.begin(), pdu.end());
    const std::uint16_t crc = crc16(out);
    out.push_back(static_cast<std::uint8_t>(crc & 0xFF));
    out.push_back(static_cast<std::uint8_t>(crc >> 8));
    return out;
}

// MBAP (transaction, protocol 0, length = 1 + PDU size, unit) then the PDU.
inline std::vector<std::uint8_t> tcp_frame(std::uint16_t transaction, std::uint8_t unit, std::span<const std::uint8_t> pdu) {
    std::vector<std::uint8_t> out;
    out.reserve(pdu.size() + mbap_header_size);
    detail::put16(out, transaction);
    detail::put16(out, 0);
    detail::put16(out, static_cast<std::uint16_t>(pdu.size() + 1));
    out.push_back(unit);
    out.insert(out.end(), pdu.begin(), pdu.end());
    return out;
}

// One whole RTU frame: at least 4 bytes, at most 256, and its CRC right. The PDU itself is not decoded here.
inline result<adu> decode_rtu(std::span<const std::uint8_t> frame) {
    if (frame.size() < 4)
        return error{errc::truncated, "RTU frame of " + std::to_string(frame.size()) + " bytes, need at least 4 (unit, function, CRC)"};
    if (frame.size() > max_rtu_frame_size)
        return error{errc::length, "RTU frame of " + std::to_string(frame.size()) + " bytes exceeds 256"};
    const std::uint16_t want = crc16(frame.first(frame.size() - 2));
    const std::uint16_t got = static_cast<std::uint16_t>(frame[frame.size() - 2] | frame[frame.size() - 1] << 8);
    if (want != got)
        return error{errc::crc, "CRC mismatch: frame carries 0x" + detail::fmt("%04lx", got) + ", computed 0x" +
                                    detail::fmt("%04lx", want)};
    return adu{frame[0], 0, std::vector<std::uint8_t>(frame.begin() + 1, frame.end() - 2)};
}

// One whole TCP frame (MBAP + PDU).
inline result<adu> decode_tcp(std::span<const std::uint8_t> frame) {
    if (frame.size() < mbap_header_size + 1)
        return error{errc::truncated, "TCP frame of " + std::to_string(frame.size()) + " bytes, need at least 8 (MBAP + function)"};
    const std::uint16_t protocol = detail::be16(&frame[2]);
    if (protocol != 0) return error{errc::protocol, "MBAP protocol id " + std::to_string(protocol) + ", expected 0"};
    const std::uint16_t length = detail::be16(&frame[4]);
    if (length < 2 || length > max_pdu_size + 1)
        return error{errc::length, "MBAP length " + std::to_string(length) + " is outside 2..254"};
    if (frame.size() != 6u + length)
        return error{frame.size() < 6u + length ? errc::truncated : errc::length,
                     "MBAP length " + std::to_string(length) + " says " + std::to_string(6 + length) +
                         " bytes, the frame has " + std::to_string(frame.size())};
    return adu{frame[6], detail::be16(&frame[0]), std::vector<std::uint8_t>(frame.begin() + 7, frame.end())};
}

enum class direction { request, response };

// The length of the RTU frame that starts `prefix`, from its function code: 0 when more bytes are needed to tell,
// or an error for a function code that no frame in this direction can have.
inline result<std::size_t> rtu_frame_length(std::span<const std::uint8_t> prefix, direction dir) {
    if (prefix.size() < 2) return std::size_t{0};
    const std::uint8_t f = prefix[1];
    if (dir == direction::response && (f & fc::exception_bit)) {
        if (!is_supported_function(f & 0x7F))
            return error{errc::function, "unsupported function code 0x" + detail::fmt("%02lx", f)};
        return std::size_t{5};
    }
    if (!is_supported_function(f))
        return error{errc::function, "unsupported function code " + std::to_string(f) + " (0x" + detail::fmt("%02lx", f) + ")"};
    if (dir == direction::request) {
        if (f == fc::write_multiple_coils || f == fc::write_multiple_registers) {
            if (prefix.size() < 7) return std::size_t{0};
            return std::size_t{9} + prefix[6];
        }
        return std::size_t{8};
    }
    if (is_read_bits(f) || is_read_registers(f)) {
        if (prefix.size() < 3) return std::size_t{0};
        return std::size_t{5} + prefix[2];
    }
    return std::size_t{8};
}

// Counters a stream keeps: every bad byte and frame is counted, none is fatal.
struct stream_counters {
    std::uint64_t frames = 0;           // good frames returned
    std::uint64_t crc_errors = 0;       // candidate frames whose CRC was wrong
    std::uint64_t bad_frames = 0;       // other framing errors (unknown function, bad MBAP)
    std::uint64_t discarded_bytes = 0;  // bytes dropped while resynchronising or at a silent interval
};

// Splits a byte stream into RTU frames. Frames may arrive split across feeds or several in one; garbage is skipped
// one byte at a time until a frame with a good CRC lines up. on_silence() is the 3.5-character silent interval:
// whatever partial frame is pending is discarded (a new frame starts after it).
class rtu_stream {
public:
    explicit rtu_stream(direction dir) : dir_(dir) {}

    void feed(std::span<const std::uint8_t> bytes) {
        buf_.insert(buf_.end(), bytes.begin(), bytes.end());
        // Bound the memory a flood can take: a frame is at most 256 bytes.
        if (buf_.size() > 4 * max_rtu_frame_size) drop(buf_.size() - max_rtu_frame_size);
    }
    void on_silence() {
        if (!buf_.empty()) drop(buf_.size());
    }
    void reset() { buf_.clear(); }

    // The next good frame, or nothing when more bytes are needed. Errors met on the way are counted and the last
    // one is kept in last_error().
    std::optional<adu> next() {
        while (buf_.size() >= 2) {
            auto len = rtu_frame_length(buf_, dir_);
            if (!len) {
                ++counters_.bad_frames;
                last_error_ = len.err();
                drop(1);
                continue;
            }
            const std::size_t n = *len;
            if (n == 0 || buf_.size() < n) return std::nullopt;
            auto frame = decode_rtu(std::span<const std::uint8_t>(buf_.data(), n));
            if (!frame) {
                ++counters_.crc_errors;
                last_error_ = frame.err();
                drop(1);
                continue;
            }
            buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
            ++counters_.frames;
            return std::move(frame).value();
        }
        return std::nullopt;
    }

    std::size_t pending() const noexcept { return buf_.size(); }
    const stream_counters &counters() const noexcept { return counters_; }
    const std::optional<error> &last_error() const noexcept { return last_error_; }

private:
    void drop(std::size_t n) {
        counters_.discarded_bytes += n;
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    }

    direction dir_;
    std::vector<std::uint8_t> buf_;
    stream_counters counters_;
    std::optional<error> last_error_;
};

// Splits a TCP byte stream into MBAP frames. A header with a protocol id other than 0 or an impossible length
// cannot be resynchronised reliably: the stream drops what it holds and counts it (a server should close the
// connection then; a client should discard its pending transaction).
class tcp_stream {
public:
    void feed(std::span<const std::uint8_t> bytes) {
        buf_.insert(buf_.end(), bytes.begin(), bytes.end());
        if (buf_.size() > 64 * max_tcp_frame_size) poison("more than 64 frames pending");
    }
    void reset() { buf_.clear(); }

    std::optional<adu> next() {
        if (buf_.size() < mbap_header_size) return std::nullopt;
        const std::uint16_t protocol = detail::be16(&buf_[2]);
        const std::uint16_t length = detail::be16(&buf_[4]);
        if (protocol != 0) {
            poison("MBAP protocol id " + std::to_string(protocol) + ", expected 0", errc::protocol);
            return std::nullopt;
        }
        if (length < 2 || length > max_pdu_size + 1) {
            poison("MBAP length " + std::to_string(length) + " is outside 2..254");
            return std::nullopt;
        }
        if (buf_.size() < 6u + length) return std::nullopt;
        adu a{buf_[6], detail::be16(&buf_[0]),
              std::vector<std::uint8_t>(buf_.begin() + 7, buf_.begin() + 6 + length)};
        buf_.erase(buf_.begin(), buf_.begin() + 6 + length);
        ++counters_.frames;
        return a;
    }

    bool poisoned_since_last_check() {
        return std::exchange(poisoned_, false);
    }
    std::size_t pending() const noexcept { return buf_.size(); }
    const stream_counters &counters() const noexcept { return counters_; }
    const std::optional<error> &last_error() const noexcept { return last_error_; }

private:
    void poison(std::string why, errc code = errc::length) {
        ++counters_.bad_frames;
        counters_.discarded_bytes += buf_.size();
        buf_.clear();
        last_error_ = error{code, std::move(why)};
        poisoned_ = true;
    }

    std::vector<std::uint8_t> buf_;
    stream_counters counters_;
    std::optional<error> last_error_;
    bool poisoned_ = false;
};

// The silent interval that ends an RTU frame, in microseconds: 3.5 characters of 11 bits, and a fixed 1750 us above
// 19200 baud (Modbus over Serial Line v1.02, 2.5.1.1).
constexpr std::uint32_t rtu_silent_interval_us(std::uint32_t baud) noexcept {
    if (baud == 0) return 1750;
    return baud > 19200 ? 1750u : static_cast<std::uint32_t>((3.5 * 11 * 1'000'000.0) / baud + 0.5);
}
// The time `bytes` characters of 11 bits (8 data, parity or a second stop bit, start, stop) take on the wire.
constexpr std::uint32_t rtu_wire_time_us(std::size_t bytes, std::uint32_t baud) noexcept {
    return baud ? static_cast<std::uint32_t>((bytes * 11 * 1'000'000.0) / baud + 0.5) : 0;
}

// ---- a slave's data model -----------------------------------------------------------------------------------------

// The four tables of a Modbus slave, each starting at address 0. serve() answers a request PDU the way a conforming
// slave does: an unsupported function gets exception 1, a bad quantity or value exception 3, an address outside a
// table exception 2.
struct register_bank {
    std::vector<bool> coils, discrete_inputs;
    std::vector<std::uint16_t> holding, input;

    std::vector<std::uint8_t> serve(std::span<const std::uint8_t> request_pdu) {
        if (request_pdu.empty()) return encode_exception(0, exception_code::illegal_function);
        auto req = decode_request(request_pdu);
        if (!req) {
            return encode_exception(request_pdu[0], req.err().code == errc::function ? exception_code::illegal_function
                                                                                   : exception_code::illegal_data_value);
        }
        return serve(*req);
    }

    std::vector<std::uint8_t> serve(const request &r) {
        auto fits = [&](std::size_t size) { return static_cast<std::size_t>(r.address) + r.quantity <= size; };
        response rsp;
        rsp.function = r.function;
        rsp.address = r.address;
        rsp.quantity = r.quantity;
        switch (r.function) {
        case fc::read_coils:
        case fc::read_discrete_inputs: {
            const auto &t = r.function == fc::read_coils ? coils : discrete_inputs;
            if (!fits(t.size())) return encode_exception(r.function, exception_code::illegal_data_address);
            rsp.bits.assign(t.begin() + r.address, t.begin() + r.address + r.quantity);
            break;
        }
        case fc::read_holding_registers:
        case fc::read_input_registers: {
            const auto &t = r.function == fc::read_holding_registers ? holding : input;
            if (!fits(t.size())) return encode_exception(r.function, exception_code::illegal_data_address);
            rsp.registers.assign(t.begin() + r.address, t.begin() + r.address + r.quantity);
            break;
        }
        case fc::write_single_coil:
        case fc::write_multiple_coils:
            if (!fits(coils.size())) return encode_exception(r.function, exception_code::illegal_data_address);
            for (std::size_t i = 0; i < r.bits.size(); ++i) coils[r.address + i] = r.bits[i];
            rsp.bits = r.bits;
            break;
        case fc::write_single_register:
        case fc::write_multiple_registers:
            if (!fits(holding.size())) return encode_exception(r.function, exception_code::illegal_data_address);
            for (std::size_t i = 0; i < r.registers.size(); ++i) holding[r.address + i] = r.registers[i];
            rsp.registers = r.registers;
            break;
        default: return encode_exception(r.function, exception_code::illegal_function);
        }
        auto out = encode_response(rsp);
        return out ? std::move(out).value() : encode_exception(r.function, exception_code::server_device_failure);
    }
};

}  // namespace firelink::proto::modbus
