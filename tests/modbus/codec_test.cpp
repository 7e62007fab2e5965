// The Modbus codec (sdk/include/firelink/proto/modbus.hpp): CRC, PDUs of every function code against the examples
// of the Modbus Application Protocol specification v1.1b3, the specification's limits, exceptions, RTU and TCP
// framing over byte streams that split, merge and garble frames, and the slave data model.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <firelink/proto/modbus.hpp>

namespace mb = firelink::proto::modbus;
using bytes = std::vector<std::uint8_t>;

namespace {

bytes hex(const std::string &s) {
    bytes out;
    std::string d;
    for (char c : s)
        if (std::isxdigit(static_cast<unsigned char>(c))) d += c;
    for (std::size_t i = 0; i + 1 < d.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoul(d.substr(i, 2), nullptr, 16)));
    return out;
}

}  // namespace

TEST(ModbusCrc, KnownValues) {
    const std::string check = "123456789";
    EXPECT_EQ(mb::crc16(bytes(check.begin(), check.end())), 0x4B37);  // CRC-16/MODBUS check value
    EXPECT_EQ(mb::rtu_frame(1, hex("03 00 00 00 0A")), hex("01 03 00 00 00 0A C5 CD"));
    EXPECT_EQ(mb::rtu_frame(0x11, hex("03 00 6B 00 03")), hex("11 03 00 6B 00 03 76 87"));
    EXPECT_EQ(mb::crc16({}), 0xFFFF);
}

TEST(ModbusRtu, AFrameWithAWrongCrcIsRejected) {
    auto good = hex("01 03 00 00 00 0A C5 CD");
    ASSERT_TRUE(mb::decode_rtu(good));
    for (std::size_t i = 0; i < good.size(); ++i) {
        auto bad = good;
        bad[i] ^= 0x01;
        auto r = mb::decode_rtu(bad);
        ASSERT_FALSE(r) << "flipped a bit of byte " << i;
        EXPECT_EQ(r.err().code, mb::errc::crc);
    }
    auto shortf = mb::decode_rtu(hex("01 03 00"));
    ASSERT_FALSE(shortf);
    EXPECT_EQ(shortf.err().code, mb::errc::truncated);
    auto longf = mb::decode_rtu(bytes(257, 0));
    ASSERT_FALSE(longf);
    EXPECT_EQ(longf.err().code, mb::errc::length);
}

// The specification's examples (Modbus Application Protocol v1.1b3, section 6), request and response of each code.
struct spec_example {
    const char *name, *request, *response;
};

class ModbusSpecExample : public ::testing::TestWithParam<spec_example> {};

TEST_P(ModbusSpecExample, DecodesEncodesAndServes) {
    const auto &ex = GetParam();
    const auto req_pdu = hex(ex.request), rsp_pdu = hex(ex.response);
    auto req = mb::decode_request(req_pdu);
    ASSERT_TRUE(req) << req.err().message;
    auto again = mb::encode_request(*req);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, req_pdu);
    auto rsp = mb::decode_response(rsp_pdu);
    ASSERT_TRUE(rsp) << rsp.err().message;
    auto matched = rsp.value();
    EXPECT_FALSE(mb::match_response(*req, matched)) << "the response answers its request";
    auto out = mb::encode_response(matched);
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, rsp_pdu);
}

INSTANTIATE_TEST_SUITE_P(
    EveryFunctionCode, ModbusSpecExample,
    ::testing::Values(spec_example{"fc01", "01 00 13 00 13", "01 03 CD 6B 05"},
                      spec_example{"fc02", "02 00 C4 00 16", "02 03 AC DB 35"},
                      spec_example{"fc03", "03 00 6B 00 03", "03 06 02 2B 00 00 00 64"},
                      spec_example{"fc04", "04 00 08 00 01", "04 02 00 0A"},
                      spec_example{"fc05", "05 00 AC FF 00", "05 00 AC FF 00"},
                      spec_example{"fc06", "06 00 01 00 03", "06 00 01 00 03"},
                      spec_example{"fc15", "0F 00 13 00 0A 02 CD 01", "0F 00 13 00 0A"},
                      spec_example{"fc16", "10 00 01 00 02 04 00 0A 01 02", "10 00 01 00 02"}),
    [](const auto &info) { return std::string(info.param.name); });

TEST(ModbusPdu, BitReadsAreTrimmedToTheRequestedQuantity) {
    auto req = mb::decode_request(hex("01 00 13 00 13"));
    auto rsp = mb::decode_response(hex("01 03 CD 6B 05")).value();
    ASSERT_FALSE(mb::match_response(*req, rsp));
    ASSERT_EQ(rsp.bits.size(), 19u);
    // 0xCD = 1100 1101: coils 20..27 are 1,0,1,1,0,0,1,1 (LSB first)
    EXPECT_EQ(rsp.bits[0], true);
    EXPECT_EQ(rsp.bits[1], false);
    EXPECT_EQ(rsp.bits[2], true);
    EXPECT_EQ(rsp.bits[3], true);
}

TEST(ModbusPdu, LimitsOfTheSpecification) {
    struct bad {
        const char *pdu;
        mb::errc code;
    };
    for (const auto &b : {bad{"03 00 00 00 00", mb::errc::quantity},            // quantity 0
                          bad{"03 00 00 00 7E", mb::errc::quantity},            // 126 registers
                          bad{"01 00 00 07 D1", mb::errc::quantity},            // 2001 coils
                          bad{"04 FF FF 00 02", mb::errc::quantity},            // runs past 65535
                          bad{"05 00 01 12 34", mb::errc::value},               // coil value neither FF00 nor 0000
                          bad{"10 00 01 00 02 03 00 0A 01", mb::errc::length},  // byte count 3 for 2 registers
                          bad{"10 00 01 00 02 04 00 0A 01", mb::errc::length},  // byte count 4 but 3 bytes
                          bad{"0F 00 13 00 0A 01 CD", mb::errc::length},        // 10 coils need 2 bytes
                          bad{"0F 00 00 07 B1 F7", mb::errc::quantity},         // 1969 coils
                          bad{"03 00 00 00", mb::errc::truncated},
                          bad{"03 00 00 00 01 00", mb::errc::length},
                          bad{"07", mb::errc::function},
                          bad{"2B 0E 01 00", mb::errc::function},
                          bad{"", mb::errc::truncated}}) {
        auto r = mb::decode_request(hex(b.pdu));
        ASSERT_FALSE(r) << b.pdu;
        EXPECT_EQ(r.err().code, b.code) << b.pdu << ": " << r.err().message;
        EXPECT_FALSE(r.err().message.empty());
    }
    EXPECT_FALSE(mb::encode_request(mb::read_registers(mb::fc::read_holding_registers, 0, 126)));
    EXPECT_FALSE(mb::encode_request(mb::write_registers(0, std::vector<std::uint16_t>(124, 1))));
    EXPECT_TRUE(mb::encode_request(mb::write_registers(0, std::vector<std::uint16_t>(123, 1))));
    EXPECT_TRUE(mb::encode_request(mb::write_coils(0, std::vector<bool>(1968, true))));
    EXPECT_FALSE(mb::encode_request(mb::write_coils(0, std::vector<bool>(1969, true))));
}

TEST(ModbusPdu, ResponsesWithBadLengthsAreRejected) {
    for (const char *pdu : {"03 06 02 2B 00 00 00", "03 05 02 2B 00 00 00", "03 00", "03", "01 00", "06 00 01 00", "10 00 01 00 02 00"}) {
        auto r = mb::decode_response(hex(pdu));
        EXPECT_FALSE(r) << pdu;
    }
}

TEST(ModbusPdu, Exceptions) {
    auto r = mb::decode_response(hex("83 02"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->function, 3);
    ASSERT_TRUE(r->exception);
    EXPECT_EQ(*r->exception, mb::exception_code::illegal_data_address);
    EXPECT_STREQ(mb::exception_name(2), "illegal_data_address");
    EXPECT_FALSE(mb::decode_response(hex("83")));         // no code
    EXPECT_FALSE(mb::decode_response(hex("83 02 00")));   // too long
    EXPECT_FALSE(mb::decode_response(hex("87 01")));      // exception of an unsupported function
    EXPECT_EQ(mb::encode_exception(0x10, 4), hex("90 04"));
    auto req = mb::decode_request(hex("03 00 6B 00 03"));
    auto exc = r.value();
    EXPECT_FALSE(mb::match_response(*req, exc)) << "an exception answers any request of its function";
}

TEST(ModbusPdu, MismatchedResponsesAreCaught) {
    auto req = mb::decode_request(hex("03 00 6B 00 03")).value();
    auto two = mb::decode_response(hex("03 04 00 01 00 02")).value();
    auto e = mb::match_response(req, two);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, mb::errc::mismatch);
    auto other_fc = mb::decode_response(hex("04 06 00 01 00 02 00 03")).value();
    EXPECT_TRUE(mb::match_response(req, other_fc));
    auto w = mb::decode_request(hex("06 00 01 00 03")).value();
    auto wrong_echo = mb::decode_response(hex("06 00 01 00 04")).value();
    EXPECT_TRUE(mb::match_response(w, wrong_echo));
}

TEST(ModbusTcp, FramesAndErrors) {
    const auto f = mb::tcp_frame(0x1234, 7, hex("03 00 6B 00 03"));
    EXPECT_EQ(f, hex("12 34 00 00 00 06 07 03 00 6B 00 03"));
    auto a = mb::decode_tcp(f);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->transaction, 0x1234);
    EXPECT_EQ(a->unit, 7);
    EXPECT_EQ(a->pdu, hex("03 00 6B 00 03"));
    auto proto = mb::decode_tcp(hex("12 34 00 01 00 06 07 03 00 6B 00 03"));
    ASSERT_FALSE(proto);
    EXPECT_EQ(proto.err().code, mb::errc::protocol);
    auto len = mb::decode_tcp(hex("12 34 00 00 00 07 07 03 00 6B 00 03"));
    ASSERT_FALSE(len);
    EXPECT_EQ(len.err().code, mb::errc::truncated);
    auto huge = mb::decode_tcp(hex("12 34 00 00 01 00 07 03"));
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.err().code, mb::errc::length);
}

TEST(ModbusRtuStream, SplitMergedAndGarbled) {
    const auto f1 = mb::rtu_frame(1, hex("03 00 00 00 0A"));
    const auto f2 = mb::rtu_frame(2, hex("10 00 01 00 02 04 00 0A 01 02"));
    const auto f3 = mb::rtu_frame(3, hex("05 00 AC FF 00"));
    // One byte at a time.
    mb::rtu_stream s{mb::direction::request};
    std::vector<mb::adu> got;
    for (const auto &f : {f1, f2, f3})
        for (auto b : f) {
            s.feed(bytes{b});
            while (auto a = s.next()) got.push_back(*a);
        }
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[1].unit, 2);
    EXPECT_EQ(got[1].pdu, hex("10 00 01 00 02 04 00 0A 01 02"));
    // All three in one chunk, with garbage before, between and after.
    bytes merged = hex("FF 00 13");
    merged.insert(merged.end(), f1.begin(), f1.end());
    merged.insert(merged.end(), {0x01, 0x03, 0x99});  // a false start: unit 1, fc 3, then junk
    merged.insert(merged.end(), f2.begin(), f2.end());
    merged.insert(merged.end(), f3.begin(), f3.end());
    mb::rtu_stream m{mb::direction::request};
    m.feed(merged);
    std::vector<std::uint8_t> units;
    while (auto a = m.next()) units.push_back(a->unit);
    EXPECT_EQ(units, (std::vector<std::uint8_t>{1, 2, 3}));
    EXPECT_GT(m.counters().discarded_bytes, 0u);
    EXPECT_EQ(m.counters().frames, 3u);
}

TEST(ModbusRtuStream, ACorruptedFrameYieldsNothingAndIsCounted) {
    auto f = mb::rtu_frame(1, hex("03 00 00 00 0A"));
    f[4] ^= 0xFF;
    mb::rtu_stream s{mb::direction::request};
    s.feed(f);
    EXPECT_FALSE(s.next());
    EXPECT_GE(s.counters().crc_errors, 1u);
    ASSERT_TRUE(s.last_error());
}

TEST(ModbusRtuStream, SilenceDiscardsAPartialFrame) {
    const auto f = mb::rtu_frame(1, hex("03 00 00 00 0A"));
    mb::rtu_stream s{mb::direction::request};
    s.feed(std::span(f).first(5));
    EXPECT_FALSE(s.next());
    s.on_silence();  // the rest never came: the next bytes start a new frame
    EXPECT_EQ(s.pending(), 0u);
    EXPECT_EQ(s.counters().discarded_bytes, 5u);
    s.feed(f);
    auto a = s.next();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->pdu, hex("03 00 00 00 0A"));
}

TEST(ModbusRtuStream, ResponsesIncludingExceptions) {
    mb::rtu_stream s{mb::direction::response};
    auto a = mb::rtu_frame(5, hex("03 06 02 2B 00 00 00 64"));
    auto b = mb::rtu_frame(5, hex("83 02"));
    auto c = mb::rtu_frame(5, hex("0F 00 13 00 0A"));
    bytes all;
    for (const auto &f : {a, b, c}) all.insert(all.end(), f.begin(), f.end());
    s.feed(all);
    std::vector<bytes> pdus;
    while (auto x = s.next()) pdus.push_back(x->pdu);
    ASSERT_EQ(pdus.size(), 3u);
    EXPECT_EQ(pdus[1], hex("83 02"));
}

TEST(ModbusTcpStream, SplitMergedAndPoisoned) {
    const auto f1 = mb::tcp_frame(1, 1, hex("03 00 6B 00 03"));
    const auto f2 = mb::tcp_frame(2, 1, hex("06 00 01 00 03"));
    bytes both = f1;
    both.insert(both.end(), f2.begin(), f2.end());
    mb::tcp_stream s;
    s.feed(std::span(both).first(3));
    EXPECT_FALSE(s.next());
    s.feed(std::span(both).subspan(3));
    auto a = s.next(), b = s.next();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->transaction, 1);
    EXPECT_EQ(b->transaction, 2);
    EXPECT_FALSE(s.next());
    s.feed(hex("00 03 AB CD 00 06 01 03 00 00 00 01"));
    EXPECT_FALSE(s.next());
    EXPECT_TRUE(s.poisoned_since_last_check());
    EXPECT_EQ(s.last_error()->code, mb::errc::protocol);
    EXPECT_EQ(s.pending(), 0u);
    s.feed(f1);  // a fresh frame after the poison is read again
    EXPECT_TRUE(s.next());
}

TEST(ModbusRegisterBank, ServesAndRefusesLikeASlave) {
    mb::register_bank bank;
    bank.holding = {1, 2, 3, 4};
    bank.input = {10, 20};
    bank.coils = {false, false, false};
    bank.discrete_inputs = {true};
    auto rsp = mb::decode_response(bank.serve(hex("03 00 01 00 02"))).value();
    EXPECT_EQ(rsp.registers, (std::vector<std::uint16_t>{2, 3}));
    EXPECT_EQ(bank.serve(hex("04 00 01 00 02")), hex("84 02"));         // past the table
    EXPECT_EQ(bank.serve(hex("07")), hex("87 01"));                     // unsupported function
    EXPECT_EQ(bank.serve(hex("03 00 00 00 00")), hex("83 03"));         // quantity 0
    EXPECT_EQ(bank.serve(hex("05 00 02 FF 00")), hex("05 00 02 FF 00"));  // echo
    EXPECT_TRUE(bank.coils[2]);
    EXPECT_EQ(bank.serve(hex("10 00 00 00 02 04 00 09 00 08")), hex("10 00 00 00 02"));
    EXPECT_EQ(bank.holding[0], 9);
    EXPECT_EQ(bank.holding[1], 8);
    EXPECT_EQ(bank.serve(hex("0F 00 00 00 02 01 01")), hex("0F 00 00 00 02"));
    EXPECT_TRUE(bank.coils[0]);
    EXPECT_FALSE(bank.coils[1]);
    auto di = mb::decode_response(bank.serve(hex("02 00 00 00 01"))).value();
    EXPECT_TRUE(di.bits[0]);
}

TEST(ModbusTiming, SilentIntervalAndWireTime) {
    EXPECT_EQ(mb::rtu_silent_interval_us(9600), 4010u);  // 3.5 x 11 bits / 9600
    EXPECT_EQ(mb::rtu_silent_interval_us(115200), 1750u);
    EXPECT_EQ(mb::rtu_wire_time_us(8, 9600), 9167u);
}
