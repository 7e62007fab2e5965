// The shared RS-485 bus: three devices on one pty. The test's peer thread on the master side plays the slaves:
// a request is [unit, seq]; units 1 and 2 answer [unit, seq, 0xA5, 0x5A] (in two writes), unit 3 is dead.
#include <cstdio>
#include <filesystem>
#include <map>

#include "log_capture.hpp"
#include "transport_test_support.hpp"

namespace transport_test {
namespace {

constexpr ft::backoff fast_retry{20ms, 200ms};
constexpr auto reply_timeout = 50ms;
constexpr auto gap = 10ms;

ft::serial_settings bus_settings(const std::string &path) {
    ft::serial_settings s;
    s.path = path;
    s.baud = 9600;
    return s;
}

ft::bus_timing bus_timing_for_tests() {
    ft::bus_timing t;
    t.inter_frame_gap = gap;
    t.default_timeout = reply_timeout;
    return t;
}

// A device driver in miniature: on OPEN it sends a request, and the next one after each reply or timeout.
struct sim_device {
    int unit;
    int rounds;
    std::chrono::milliseconds timeout;  // short for the dead unit; generous for live ones, which must never hit it
    ft::executor ex;
    std::atomic<int> *turns_ended;  // shared: incremented before a device ends its turn
    std::unique_ptr<ft::link> link;
    std::atomic<int> replies{0};
    std::atomic<int> timeouts{0};
    std::atomic<int> wrong{0};  // bytes that were not this device's reply to its current request
    std::vector<std::uint8_t> rx;
    std::uint8_t seq = 0;

    ft::link_events events() {
        ft::link_events e;
        e.on_state = [this](int state, fl_status) {
            if (state == FL_LINK_OPEN) send_next();
            if (state == FL_LINK_REPLY_TIMEOUT) {
                ++timeouts;
                send_next();
            }
        };
        e.on_data = [this](const std::uint8_t *p, std::size_t n) {
            rx.insert(rx.end(), p, p + n);
            const std::vector<std::uint8_t> expected{static_cast<std::uint8_t>(unit), seq, 0xA5, 0x5A};
            if (rx.size() > expected.size() || !std::equal(rx.begin(), rx.end(), expected.begin())) {
                ++wrong;
                return;
            }
            if (rx.size() == expected.size()) {
                ++replies;
                ++*turns_ended;
                EXPECT_EQ(link->end_request(), FL_OK);
                send_next();
            }
        };
        return e;
    }
    void send_next() {
        if (replies + timeouts >= rounds) return;
        rx.clear();
        ++seq;
        const std::uint8_t frame[2] = {static_cast<std::uint8_t>(unit), seq};
        EXPECT_EQ(link->request(frame, sizeof frame, timeout), FL_OK);
    }
};

// `pty` is the bus port for the tests that need no replugging; `link` the device of the tests that need one.
class Rs485Bus : public link_test {
protected:
    void make_bus(const std::string &path) {
        bus = ft::make_rs485_bus(run.io, bus_settings(path), bus_timing_for_tests(), fast_retry);
    }
    // Attaches `link` to the bus and opens it: true once it reported OPEN.
    bool link_opens() {
        link = bus->attach(ex, rec.events());
        open_link();
        return rec.wait_state(FL_LINK_OPEN);
    }

    pty_pair pty;
    std::shared_ptr<ft::rs485_bus> bus;
};

// One of several devices on the bus, on its own strand.
struct bus_device {
    recorder rec;
    ft::executor ex;
    std::unique_ptr<ft::link> link;

    bus_device(ft::rs485_bus &bus, ft::executor strand) : ex(std::move(strand)), link(bus.attach(ex, rec.events())) {}
    void open() {
        on(ex, [&] { return link->open(); });
    }
    void close() {
        on(ex, [&] { return link->close(); });
    }
};

// The slaves on the master side of the pty.
struct bus_peer {
    int fd;
    std::function<std::uint64_t()> turns_ended;  // end_request calls + bus reply timeouts so far
    std::atomic<bool> stop{false};
    std::map<int, int> requests_by_unit;
    std::vector<int> order;  // the unit of each request, as seen on the wire
    std::vector<std::string> violations;
    std::thread thread;

    void run() {
        using steady = std::chrono::steady_clock;
        int seen = 0;
        bool answered = false;        // the previous turn was answered...
        steady::time_point replied{};  // ...and its reply's last byte was written no earlier than this
        std::string req;
        while (!stop) {
            req += read_exact(fd, 2 - req.size(), 100ms);
            if (req.size() < 2) continue;
            const auto now = steady::now();
            const int unit = static_cast<std::uint8_t>(req[0]);
            // Every turn before this request must have ended before it was sent: one request on the wire at a time.
            if (turns_ended() < static_cast<std::uint64_t>(seen))
                violations.push_back("request " + std::to_string(seen) + " for unit " + std::to_string(unit) +
                                     " arrived while an earlier turn was still open");
            // The inter-frame gap after an answered turn was kept: the turn ended after our reply was written, so
            // this is a lower bound a slow machine can only exceed.
            if (answered && now - replied < gap)
                violations.push_back("request " + std::to_string(seen) + " came before the inter-frame gap");
            answered = false;
            ++seen;
            ++requests_by_unit[unit];
            order.push_back(unit);
            if (unit == 1 || unit == 2) {
                write_all(fd, std::string{req[0], req[1]});
                answered = true;
                replied = steady::now();  // before the last byte is written: the turn cannot end earlier
                write_all(fd, "\xA5\x5A");
            }
            req.clear();
        }
    }
};

TEST_F(Rs485Bus, FairTurnsOneAtATimeAndADeadDeviceNeverStarvesTheOthers) {
    constexpr int rounds = 15;
    make_bus(pty.path);
    std::atomic<int> turns_ended{0};

    bus_peer peer;
    peer.fd = pty.master;
    peer.turns_ended = [&] { return turns_ended.load() + bus->counters().reply_timeouts; };
    peer.thread = std::thread([&] { peer.run(); });

    std::vector<std::unique_ptr<sim_device>> devices;
    for (int unit : {1, 2, 3}) {
        auto d = std::make_unique<sim_device>();
        d->unit = unit;
        d->rounds = rounds;
        d->timeout = unit == 3 ? reply_timeout : 2000ms;
        d->ex = run.strand();
        d->turns_ended = &turns_ended;
        d->link = bus->attach(d->ex, d->events());
        d->link->set_unit(unit);
        devices.push_back(std::move(d));
    }
    for (auto &d : devices) {
        EXPECT_EQ(d->link->kind(), FL_TRANSPORT_RS485_BUS);
        EXPECT_EQ(on(d->ex, [&] { return d->link->open(); }), FL_OK);
    }

    const bool done = eventually([&] {
        return devices[0]->replies == rounds && devices[1]->replies == rounds && devices[2]->timeouts == rounds;
    });
    peer.stop = true;
    peer.thread.join();
    EXPECT_TRUE(done) << "replies " << devices[0]->replies << "/" << devices[1]->replies << ", timeouts "
                      << devices[2]->timeouts;

    for (const auto &v : peer.violations) ADD_FAILURE() << v;
    EXPECT_EQ(devices[0]->timeouts, 0) << "a live device never times out";
    EXPECT_EQ(devices[1]->timeouts, 0);
    EXPECT_EQ(devices[2]->replies, 0);
    for (auto &d : devices) EXPECT_EQ(d->wrong, 0) << "unit " << d->unit << " got bytes that were not its reply";
    // Fair turns: while two devices both still have requests to make, neither gets far ahead of the other. Strict
    // round-robin keeps them within one turn; the slack only allows for the dead device hearing of its timeout late.
    {
        std::map<int, int> so_far;
        bool fair = true;
        for (std::size_t i = 0; i < peer.order.size() && fair; ++i) {
            ++so_far[peer.order[i]];
            for (int a : {1, 2, 3})
                for (int b : {1, 2, 3})
                    if (fair && so_far[a] < rounds && so_far[b] < rounds && so_far[a] - so_far[b] > 5) {
                        fair = false;
                        ADD_FAILURE() << "unfair: unit " << a << " had " << so_far[a] << " turns while unit " << b
                                      << " had " << so_far[b] << " (request " << i << ")";
                    }
        }
    }
    EXPECT_EQ(peer.requests_by_unit[1], rounds);
    EXPECT_EQ(peer.requests_by_unit[2], rounds);
    EXPECT_EQ(peer.requests_by_unit[3], rounds);

    const auto c = bus->counters();
    EXPECT_EQ(c.reply_timeouts, static_cast<std::uint64_t>(rounds));
    EXPECT_EQ(c.bytes_out, 3u * rounds * 2);
    EXPECT_EQ(c.bytes_in, 2u * rounds * 4);
    EXPECT_EQ(c.bytes_discarded, 0u);
    EXPECT_EQ(devices[2]->link->counters().reply_timeouts, static_cast<std::uint64_t>(rounds));
    EXPECT_EQ(devices[0]->link->counters().bytes_in, rounds * 4u);

    for (auto &d : devices) on(d->ex, [&] { d->link.reset(); return 0; });
}

TEST_F(Rs485Bus, SecondRequestIsBusyAndWriteIsMisuse) {
    make_bus(pty.path);
    recorder dead_rec;
    auto dead_ex = run.strand();
    auto dead = bus->attach(dead_ex, dead_rec.events());
    link = bus->attach(ex, rec.events());
    const std::uint8_t r3[2] = {3, 1}, r1[2] = {1, 1};

    EXPECT_EQ(on(ex, [&] { return link->request(r1, 2, 1s); }), FL_CLOSED) << "not open yet";
    on(dead_ex, [&] { return dead->open(); });
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(dead_rec.wait_state(FL_LINK_OPEN));
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    EXPECT_EQ(on(ex, [&] { return link->write(r1, 2); }), FL_MISUSE) << "a bus device talks in turns only";
    EXPECT_EQ(on(dead_ex, [&] { return dead->request(r3, 2, 5s); }), FL_OK);
    EXPECT_EQ(read_exact(pty.master, 2), std::string("\x03\x01", 2));  // the dead unit holds the bus
    EXPECT_EQ(on(ex, [&] { return link->request(r1, 2, 1s); }), FL_OK);  // queued behind it
    EXPECT_EQ(on(ex, [&] { return link->request(r1, 2, 1s); }), FL_BUSY) << "one queued request per device";
    EXPECT_EQ(on(dead_ex, [&] { return dead->request(r3, 2, 1s); }), FL_BUSY) << "one request in its turn";

    // Closing the device in its turn ends the turn: the queued device is served long before the 5 s timeout.
    on(dead_ex, [&] {
        dead->close();
        dead_rec.mark_closed();
        return 0;
    });
    EXPECT_EQ(read_exact(pty.master, 2, 4s), std::string("\x01\x01", 2));
    write_all(pty.master, std::string("\x01\x01\xA5\x5A", 4));
    EXPECT_TRUE(rec.wait_data(std::string("\x01\x01\xA5\x5A", 4)));
    EXPECT_EQ(on(ex, [&] { return link->end_request(); }), FL_OK);
    EXPECT_EQ(on(ex, [&] { return link->end_request(); }), FL_MISUSE);
    EXPECT_EQ(dead_rec.late_calls(), 0);
    EXPECT_EQ(dead_rec.count(FL_LINK_REPLY_TIMEOUT), 0);
    close_link();
}

// The port opens for the first device to open; its log line counts every device that shares the bus.
TEST_F(Rs485Bus, TheOpenLogCountsTheDevicesOnTheBus) {
    log_capture logs;
    make_bus(pty.path);
    recorder rec2, rec3, rec4;
    link = bus->attach(ex, rec.events());  // the first of three, and the one to open
    auto second = bus->attach(run.strand(), rec2.events());
    auto third = bus->attach(run.strand(), rec3.events());
    auto gone = bus->attach(run.strand(), rec4.events());
    gone.reset();  // detached before the port opened: not on the bus
    open_link();
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_TRUE(logs.wait("] open (9600 baud, 8N1), 3 device(s) on the bus")) << "the first to open is not alone";
    close_link();
}

TEST_F(Rs485Bus, BytesOutsideAnyTurnAreDiscardedAndCounted) {
    make_bus(pty.path);
    ASSERT_TRUE(link_opens());

    write_all(pty.master, "noise");
    ASSERT_TRUE(eventually([&] { return bus->counters().bytes_discarded == 5; }));
    EXPECT_EQ(rec.received(), "");

    // A turn still works, and its reply reaches the device.
    const std::uint8_t req[2] = {1, 7};
    EXPECT_EQ(on(ex, [&] { return link->request(req, 2, 2s); }), FL_OK);
    EXPECT_EQ(read_exact(pty.master, 2), std::string("\x01\x07", 2));
    write_all(pty.master, "ok");
    EXPECT_TRUE(rec.wait_data("ok"));
    on(ex, [&] { return link->end_request(); });
    close_link();
}

TEST_F(Rs485Bus, BroadcastEndedAtOnceIsStillSent) {
    make_bus(pty.path);
    ASSERT_TRUE(link_opens());
    // A Modbus broadcast (unit 0) has no reply: the driver ends the request at once.
    const std::uint8_t broadcast[2] = {0, 1};
    EXPECT_EQ(on(ex, [&] { return link->request(broadcast, 2, 1s) == FL_OK ? link->end_request() : FL_ERROR; }), FL_OK);
    EXPECT_EQ(read_exact(pty.master, 2), std::string("\x00\x01", 2));
    const std::uint8_t next[2] = {1, 2};
    EXPECT_EQ(on(ex, [&] { return link->request(next, 2, 1s); }), FL_OK);
    EXPECT_EQ(read_exact(pty.master, 2), std::string("\x01\x02", 2));
    close_link();
}

// Pausing a bus device pauses its polls: request() is FL_BUSY, the reply already in flight is delivered, and the other
// devices keep their turns.
TEST_F(Rs485Bus, PausedDeviceIsBusyItsReplyInFlightArrivesAndTheOthersKeepTheirTurns) {
    make_bus(pty.path);
    bus_device a(*bus, run.strand()), b(*bus, run.strand());
    a.open();
    b.open();
    ASSERT_TRUE(a.rec.wait_state(FL_LINK_OPEN));
    ASSERT_TRUE(b.rec.wait_state(FL_LINK_OPEN));

    const std::uint8_t a1[2] = {1, 1};
    EXPECT_EQ(on(a.ex, [&] { return a.link->request(a1, 2, 2s); }), FL_OK);
    EXPECT_EQ(read_exact(pty.master, 2), std::string("\x01\x01", 2));
    on(a.ex, [&] { a.link->set_paused(true); });  // in its turn, awaiting the reply
    EXPECT_TRUE(on(a.ex, [&] { return a.link->paused(); }));
    write_all(pty.master, std::string("\x01\x01\xA5\x5A", 4));
    EXPECT_TRUE(a.rec.wait_data(std::string("\x01\x01\xA5\x5A", 4))) << "the reply in flight is delivered";
    EXPECT_EQ(on(a.ex, [&] { return a.link->end_request(); }), FL_OK);
    const std::uint8_t a2[2] = {1, 2};
    EXPECT_EQ(on(a.ex, [&] { return a.link->request(a2, 2, 2s); }), FL_BUSY) << "a paused device polls nothing";
    EXPECT_EQ(a.link->counters().pauses, 1u);

    for (std::uint8_t seq = 1; seq <= 3; ++seq) {
        const std::uint8_t req[2] = {2, seq};
        EXPECT_EQ(on(b.ex, [&] { return b.link->request(req, 2, 2s); }), FL_OK);
        EXPECT_EQ(read_exact(pty.master, 2), std::string(reinterpret_cast<const char *>(req), 2))
            << "device B's turn " << int(seq) << " while A is paused";
        write_all(pty.master, std::string{'\x02', static_cast<char>(seq)});
        ASSERT_TRUE(eventually([&] { return b.rec.received_size() == 2u * seq; }));
        EXPECT_EQ(on(b.ex, [&] { return b.link->end_request(); }), FL_OK);
    }
    EXPECT_EQ(read_exact(pty.master, 1, 200ms), "") << "nothing else went out on the bus";

    on(a.ex, [&] { a.link->set_paused(false); });
    EXPECT_EQ(on(a.ex, [&] { return a.link->request(a2, 2, 2s); }), FL_OK) << "resumed: polls again";
    EXPECT_EQ(read_exact(pty.master, 2), std::string("\x01\x02", 2));
    EXPECT_EQ(bus->counters().bytes_discarded, 0u);
    a.close();
    b.close();
}

TEST_F(Rs485Bus, LostPortIsReopenedForEveryDevice) {
    char dir[] = "/tmp/fl-bus-XXXXXX";
    const std::filesystem::path alias = std::filesystem::path(::mkdtemp(dir)) / "ttyBUS";
    auto first = std::make_unique<pty_pair>();
    std::filesystem::create_symlink(first->path, alias);

    make_bus(alias.string());
    bus_device d1(*bus, run.strand()), d2(*bus, run.strand());
    d1.open();
    d2.open();
    ASSERT_TRUE(d1.rec.wait_state(FL_LINK_OPEN));
    ASSERT_TRUE(d2.rec.wait_state(FL_LINK_OPEN));

    first.reset();
    ASSERT_TRUE(d1.rec.wait_state(FL_LINK_LOST));
    ASSERT_TRUE(d2.rec.wait_state(FL_LINK_LOST));
    pty_pair second;
    std::filesystem::remove(alias);
    std::filesystem::create_symlink(second.path, alias);
    ASSERT_TRUE(d1.rec.wait_state(FL_LINK_OPEN, 2));
    ASSERT_TRUE(d2.rec.wait_state(FL_LINK_OPEN, 2));
    EXPECT_GE(bus->counters().reconnects, 1u);
    EXPECT_EQ(d1.link->counters().reconnects, 1u);

    const std::uint8_t req[2] = {2, 9};
    EXPECT_EQ(on(d2.ex, [&] { return d2.link->request(req, 2, 2s); }), FL_OK);
    EXPECT_EQ(read_exact(second.master, 2), std::string("\x02\x09", 2));
    d1.close();
    d2.close();
    std::filesystem::remove_all(alias.parent_path());
}

}  // namespace
}  // namespace transport_test
