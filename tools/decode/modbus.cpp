// firelink-decode modbus-rtu|modbus-tcp [--request|--response] HEX...: each argument is one frame in hex (spaces and
// colons allowed); each is printed as one line of JSON. A frame that is not valid Modbus prints {"valid": false,
// "error": <crc|length|truncated|function|quantity|value|protocol|hex>, "reason": "..."} and the exit code is 1.
// Codec: sdk/include/firelink/proto/modbus.hpp.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <firelink/text.hpp>
#include <firelink/proto/modbus.hpp>

#include "subcommand.hpp"

namespace {

namespace mb = firelink::proto::modbus;

struct json_line {
    std::string body;
    void add(const std::string &k, const std::string &raw_value) {
        body += (body.empty() ? "" : ", ") + firelink::text::json_string(k) + ": " + raw_value;
    }
    void str(const std::string &k, const std::string &v) { add(k, firelink::text::json_string(v)); }
    void num(const std::string &k, long long v) { add(k, std::to_string(v)); }
    std::string done() const { return "{" + body + "}"; }
};

std::string hex16(unsigned v) {
    char b[8];
    std::snprintf(b, sizeof b, "0x%04x", v);
    return b;
}

void describe_request(json_line &j, const mb::request &r) {
    j.str("direction", "request");
    j.num("function", r.function);
    j.str("function_name", mb::function_name(r.function));
    j.num("address", r.address);
    if (r.function == mb::fc::write_single_coil) {
        j.add("value", r.bits[0] ? "true" : "false");
    } else if (r.function == mb::fc::write_single_register) {
        j.num("value", r.registers[0]);
    } else {
        j.num("quantity", r.quantity);
    }
    if (r.function == mb::fc::write_multiple_coils) {
        std::string a;
        for (bool b : r.bits) a += (a.empty() ? "" : ", ") + std::string(b ? "true" : "false");
        j.add("values", "[" + a + "]");
    } else if (r.function == mb::fc::write_multiple_registers) {
        std::string a;
        for (auto v : r.registers) a += (a.empty() ? "" : ", ") + std::to_string(v);
        j.add("values", "[" + a + "]");
    }
}

void describe_response(json_line &j, const mb::response &r) {
    j.str("direction", "response");
    j.num("function", r.function);
    j.str("function_name", mb::function_name(r.function));
    if (r.exception) {
        j.num("exception", *r.exception);
        j.str("exception_name", mb::exception_name(*r.exception));
        return;
    }
    if (mb::is_read_bits(r.function)) {
        j.num("byte_count", static_cast<long long>(r.bits.size() / 8));
        std::string a;
        for (bool b : r.bits) a += (a.empty() ? "" : ", ") + std::string(b ? "true" : "false");
        j.add("bits", "[" + a + "]");
    } else if (mb::is_read_registers(r.function)) {
        j.num("byte_count", static_cast<long long>(r.registers.size() * 2));
        std::string a;
        for (auto v : r.registers) a += (a.empty() ? "" : ", ") + std::to_string(v);
        j.add("registers", "[" + a + "]");
    } else {
        j.num("address", r.address);
        if (r.function == mb::fc::write_single_coil) j.add("value", r.bits[0] ? "true" : "false");
        else if (r.function == mb::fc::write_single_register) j.num("value", r.registers[0]);
        else j.num("quantity", r.quantity);
    }
}

enum class want { any, request, response };

// Decodes a PDU as a request and/or a response; on failure returns the error to report.
std::optional<mb::error> describe_pdu(json_line &j, const std::vector<std::uint8_t> &pdu, want w) {
    const bool exception = !pdu.empty() && (pdu[0] & mb::fc::exception_bit);
    std::optional<mb::result<mb::request>> req;
    std::optional<mb::result<mb::response>> rsp;
    if (w != want::response && !exception) req = mb::decode_request(pdu);
    if (w != want::request) rsp = mb::decode_response(pdu);
    const bool req_ok = req && req->ok(), rsp_ok = rsp && rsp->ok();
    if (req_ok) {
        describe_request(j, req->value());
        // Writes of one coil or register are echoed: the same bytes are both.
        if (rsp_ok) j.str("note", "the same bytes are also a valid response (use --response to read them so)");
        return std::nullopt;
    }
    if (rsp_ok) {
        describe_response(j, rsp->value());
        return std::nullopt;
    }
    if (req && !rsp) return req->err();
    if (rsp && !req) return rsp->err();
    // Neither: report the reading that fits the frame's shape best (a function error is the same for both).
    const auto &re = req->err(), &se = rsp->err();
    if (re.code == mb::errc::function) return re;
    return mb::error{se.code, "as a request: " + re.message + "; as a response: " + se.message};
}

int run(const char *name, bool tcp, int argc, char **argv) {
    want w = want::any;
    std::vector<std::string> frames;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::printf("usage: firelink-decode %s [--request|--response] HEX...\n"
                        "  each HEX argument is one %s frame (spaces and colons allowed), printed as one line of JSON.\n"
                        "  A frame that is not valid says why (crc, length, truncated, function, quantity, value%s) and the\n"
                        "  exit code is 1. Without --request/--response the direction is read from the frame.\n",
                        name, tcp ? "Modbus TCP (MBAP + PDU)" : "Modbus RTU (unit, PDU, CRC-16)", tcp ? ", protocol" : "");
            return 0;
        }
        if (a == "--request") w = want::request;
        else if (a == "--response") w = want::response;
        else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
            std::fprintf(stderr, "firelink-decode %s: unknown option '%s'\n", name, a.c_str());
            return 2;
        } else frames.push_back(a);
    }
    if (frames.empty()) {
        std::fprintf(stderr, "usage: firelink-decode %s [--request|--response] HEX...\n", name);
        return 2;
    }
    int status = 0;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        json_line j;
        j.num("frame", static_cast<long long>(i + 1));
        std::string why;
        auto bytes = firelink::text::parse_hex(frames[i], why);
        std::optional<mb::error> err;
        if (!bytes) {
            j.add("valid", "false");
            j.str("error", "hex");
            j.str("reason", why);
            std::printf("%s\n", j.done().c_str());
            status = 1;
            continue;
        }
        json_line body;
        if (tcp) {
            auto a = mb::decode_tcp(*bytes);
            if (!a) err = a.err();
            else {
                body.num("transaction", a->transaction);
                body.num("unit", a->unit);
                err = describe_pdu(body, a->pdu, w);
            }
        } else {
            auto a = mb::decode_rtu(*bytes);
            if (!a) err = a.err();
            else {
                body.num("unit", a->unit);
                if (a->unit == 0) body.str("addressing", "broadcast");
                err = describe_pdu(body, a->pdu, w);
                body.str("crc", hex16(static_cast<unsigned>((*bytes)[bytes->size() - 2] | (*bytes)[bytes->size() - 1] << 8)));
            }
        }
        if (err) {
            j.add("valid", "false");
            j.str("error", mb::errc_name(err->code));
            j.str("reason", err->message);
            status = 1;
        } else {
            j.add("valid", "true");
            j.body += ", " + body.body;
        }
        std::printf("%s\n", j.done().c_str());
    }
    return status;
}

int run_rtu(int argc, char **argv) { return run("modbus-rtu", false, argc, argv); }
int run_tcp(int argc, char **argv) { return run("modbus-tcp", true, argc, argv); }

const firelink::tools::registration rtu_reg{"modbus-rtu", "decode Modbus RTU frames (unit, PDU, CRC-16)", &run_rtu};
const firelink::tools::registration tcp_reg{"modbus-tcp", "decode Modbus TCP frames (MBAP + PDU)", &run_tcp};

}  // namespace
