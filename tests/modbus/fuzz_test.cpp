// A seeded random fuzz of the Modbus codec: random bytes, and valid frames mutated (bit flips, insertions, deletions,
// truncations, splices), fed whole to every decoder and in random chunks to both streams. Nothing may crash, hang or
// grow without bound, every frame a decoder accepts must re-encode to the same bytes, and a stream must find a good
// frame again after any garbage once a silent interval has passed. Fixed seeds: every run is the same run.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include <firelink/proto/modbus.hpp>

namespace mb = firelink::proto::modbus;
using bytes = std::vector<std::uint8_t>;

namespace {

bytes random_valid_pdu(std::mt19937 &rng, bool response) {
    std::uniform_int_distribution<int> pick(0, 7), addr(0, 60000), small(1, 20);
    const std::uint8_t fcs[] = {1, 2, 3, 4, 5, 6, 15, 16};
    const std::uint8_t f = fcs[pick(rng)];
    mb::register_bank bank;
    bank.coils.assign(65536, true);
    bank.discrete_inputs.assign(65536, false);
    bank.holding.assign(65536, 0x1234);
    bank.input.assign(65536, 0xBEEF);
    mb::request r;
    const auto a = static_cast<std::uint16_t>(addr(rng));
    const auto n = static_cast<std::uint16_t>(small(rng));
    switch (f) {
    case 1: case 2: case 3: case 4: r = mb::read_registers(f, a, n); break;
    case 5: r = mb::write_coil(a, n % 2); break;
    case 6: r = mb::write_register(a, n); break;
    case 15: r = mb::write_coils(a, std::vector<bool>(n, true)); break;
    default: r = mb::write_registers(a, std::vector<std::uint16_t>(n, 7)); break;
    }
    auto pdu = mb::encode_request(r).value();
    return response ? bank.serve(pdu) : pdu;
}

bytes mutate(std::mt19937 &rng, bytes b) {
    std::uniform_int_distribution<int> op(0, 5), byte(0, 255);
    const int rounds = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < rounds; ++k) {
        const std::size_t at = b.empty() ? 0 : rng() % b.size();
        switch (op(rng)) {
        case 0:
            if (!b.empty()) b[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
            break;
        case 1: b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(byte(rng))); break;
        case 2:
            if (!b.empty()) b.erase(b.begin() + static_cast<std::ptrdiff_t>(at));
            break;
        case 3: b.resize(at); break;
        case 4:
            if (!b.empty()) b[at] = static_cast<std::uint8_t>(byte(rng));
            break;
        default: { bytes extra(rng() % 300); for (auto &x : extra) x = static_cast<std::uint8_t>(byte(rng)); b.insert(b.end(), extra.begin(), extra.end()); }
        }
    }
    return b;
}

void check_decoders(const bytes &b) {
    if (auto r = mb::decode_request(b)) {
        auto again = mb::encode_request(*r);
        ASSERT_TRUE(again);
        // Write multiple coils may carry junk in the padding bits of its last byte: accepted, and not re-encoded.
        if (r->function != mb::fc::write_multiple_coils) {
            ASSERT_EQ(*again, b);
        }
        auto twice = mb::decode_request(*again);
        ASSERT_TRUE(twice);
        ASSERT_EQ(twice->bits, r->bits);
        ASSERT_EQ(twice->registers, r->registers);
        ASSERT_EQ(twice->quantity, r->quantity);
    }
    if (auto r = mb::decode_response(b)) {
        ASSERT_LE(r->registers.size(), 126u);
        ASSERT_LE(r->bits.size(), 8u * 252u);
    }
    if (auto a = mb::decode_rtu(b)) {
        ASSERT_EQ(mb::rtu_frame(a->unit, a->pdu), b);
    }
    if (auto a = mb::decode_tcp(b)) {
        ASSERT_EQ(mb::tcp_frame(a->transaction, a->unit, a->pdu), b);
    }
    mb::register_bank bank;
    bank.holding.assign(16, 0);
    bank.coils.assign(16, false);
    (void)bank.serve(b);
}

}  // namespace

TEST(ModbusFuzz, DecodersNeverCrashAndRoundTripWhatTheyAccept) {
    std::mt19937 rng(20261128);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 20000; ++i) {
        bytes b;
        if (i % 3 == 0) {
            b.resize(rng() % 300);
            for (auto &x : b) x = static_cast<std::uint8_t>(byte(rng));
        } else {
            auto pdu = random_valid_pdu(rng, i % 2);
            b = i % 5 == 0 ? mb::tcp_frame(static_cast<std::uint16_t>(i), 1, pdu) : mb::rtu_frame(1, pdu);
            if (i % 4 != 0) b = mutate(rng, b);
        }
        check_decoders(b);
        if (b.size() > 1) check_decoders(bytes(b.begin() + 1, b.end()));
        if (HasFatalFailure()) FAIL() << "input " << i;
    }
}

TEST(ModbusFuzz, StreamsStayBoundedAndRecover) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 1500; ++i) {
        const bool response = i % 2;
        mb::rtu_stream rtu{response ? mb::direction::response : mb::direction::request};
        mb::tcp_stream tcp;
        bytes noise(rng() % 2000);
        for (auto &x : noise) x = static_cast<std::uint8_t>(byte(rng));
        if (i % 3 == 0) noise = mutate(rng, mb::rtu_frame(9, random_valid_pdu(rng, response)));
        // Random chunks.
        for (std::size_t at = 0; at < noise.size();) {
            const std::size_t n = std::min<std::size_t>(noise.size() - at, 1 + rng() % 64);
            rtu.feed(std::span(noise).subspan(at, n));
            tcp.feed(std::span(noise).subspan(at, n));
            at += n;
            int guard = 0;
            while (rtu.next()) ASSERT_LT(++guard, 1000);
            guard = 0;
            while (tcp.next()) ASSERT_LT(++guard, 1000);
            ASSERT_LE(rtu.pending(), 4 * mb::max_rtu_frame_size);
            ASSERT_LE(tcp.pending(), 64 * mb::max_tcp_frame_size);
        }
        // After a silent interval, a good frame is found whatever came before.
        rtu.on_silence();
        const auto pdu = random_valid_pdu(rng, response);
        rtu.feed(mb::rtu_frame(42, pdu));
        auto a = rtu.next();
        ASSERT_TRUE(a) << "round " << i;
        EXPECT_EQ(a->unit, 42);
        EXPECT_EQ(a->pdu, pdu);
        tcp.reset();
        tcp.feed(mb::tcp_frame(5, 42, pdu));
        auto t = tcp.next();
        ASSERT_TRUE(t);
        EXPECT_EQ(t->pdu, pdu);
    }
}
