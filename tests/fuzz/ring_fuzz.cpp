// ring_fuzz: the host's consumer of a runner's event ring, with the runner hostile: it controls all of the shared
// memory, so the input is a script of what it does to one lane (write any bytes anywhere in the lane, set the head
// to anything, push honest records with the real producer) between the host's front(), pop() and empty(). The
// consumer must answer ring_corrupt or records of at most max_event_bytes; it must never read outside its lane,
// loop, or allocate for a size it was told.
//
// Out-of-lane reads would land in the same mapping (the other lanes, the header), where ASan sees nothing: so all
// of it but this lane's data and head/tail is poisoned, and touching it is an ASan report. The script uses the
// alarm or the event lane, never the telemetry lane: that one ends the mapping, and what follows it is whatever
// the kernel mapped next, readable and not ASan's (an overrun there went unseen). The consumer's code is the same
// for every lane.
//
// While the script has done nothing hostile, the ring must also work: every pushed record comes out once, in
// order, intact; no ring_corrupt; an empty lane takes any valid event.
#include <deque>
#include <optional>

#include <sanitizer/asan_interface.h>

#include <firelink/core/event_check.hpp>

#include "firelink/isolation/event_ring.hpp"
#include "harness.hpp"

namespace {

namespace iso = firelink::isolation;
using firelink::core::max_event_bytes;

// The script's operations, one byte each (the byte modulo their count), followed by their arguments.
enum op : std::uint8_t {
    write_bytes,  // u24 offset from the published tail, u8 length, the bytes: the runner scribbles in its lane (from
                  // the tail: the next record the host reads is where a lie does harm, offset 0 its size)
    head_near,    // i16 delta: head = the published tail + delta (a plausible lie)
    head_raw,     // u64: head = anything
    push,         // u24 size, u8 device: the runner's real producer pushes an event of that size (up to max_event_bytes)
    front,
    pop,
    empty,
    drain,        // front and pop until the lane is empty (at most 256 records)
    op_count
};

struct reader {
    const std::uint8_t *p, *end;
    std::size_t left() const { return static_cast<std::size_t>(end - p); }
    std::uint64_t take(int bytes) {  // little-endian; zeros past the end
        std::uint64_t v = 0;
        for (int i = 0; i < bytes && p < end; ++i) v |= std::uint64_t(*p++) << (8 * i);
        return v;
    }
};

// The event bytes an honest push writes: a function of the record's number, so that the host's copy can be checked.
// In place, not a fresh vector each time: the run should spend its time in the consumer, not the allocator.
std::uint8_t pattern_at(std::uint64_t number, std::size_t i) { return static_cast<std::uint8_t>(number * 31 + i); }
bool is_pattern(const std::vector<std::uint8_t> &e, std::uint64_t number, std::size_t size) {
    if (e.size() != size) return false;
    for (std::size_t i = 0; i < size; ++i)
        if (e[i] != pattern_at(number, i)) return false;
    return true;
}

iso::ring_memory &rings() {
    // Asked for the least a ring can be (64 KiB a lane, rounded up by create): the host's checks at their tightest.
    static iso::ring_memory m = iso::ring_memory::create(64 << 10);
    return m;
}

std::string script(std::uint8_t lane, std::initializer_list<std::vector<std::uint8_t>> ops) {
    std::string s(1, static_cast<char>(lane));
    for (const auto &o : ops) s.append(o.begin(), o.end());
    return s;
}
std::vector<std::uint8_t> push_op(std::uint32_t size, std::uint8_t device) {
    return {op::push, static_cast<std::uint8_t>(size), static_cast<std::uint8_t>(size >> 8),
            static_cast<std::uint8_t>(size >> 16), device};
}

const std::vector<std::pair<std::string, std::string>> &seeds() {
    static const std::vector<std::pair<std::string, std::string>> all = {
        {"push-pop", script(0, {push_op(40, 1), {op::front}, {op::pop}, {op::empty}})},
        // Large events until the producer wraps at the lane's end, then everything out.
        {"wrap", script(1, {push_op(60000, 1), push_op(60000, 2), push_op(60000, 3), push_op(60000, 4), {op::front},
                            {op::pop}, {op::front}, {op::pop}, push_op(60000, 5), {op::drain}})},
        {"many-small", script(0, {push_op(0, 1), push_op(1, 1), push_op(7, 2), push_op(8, 2), push_op(9, 3),
                                  {op::drain}, push_op(65536, 4), {op::drain}})},
        // A size field rewritten under the host after it copied the record out, then a head that lies.
        {"tamper", script(1, {push_op(100, 1), {op::front}, {op::write_bytes, 0, 0, 0, 4, 0xff, 0xff, 0, 0}, {op::pop},
                              push_op(16, 2), {op::head_near, 0x40, 0}, {op::drain}})},
        // The host's tail near the lane's end (22048 bytes before it), where a record's size must be checked
        // against the end and not only against the head.
        {"near-end", script(0, {push_op(60000, 1), push_op(60000, 2), push_op(60000, 3), push_op(60000, 4), {op::drain},
                                {op::head_near, 0xff, 0x7f}, {op::write_bytes, 0, 0, 0, 4, 0x10, 0x27, 0, 0},
                                {op::front}})},
        {"head-raw", script(0, {{op::head_raw, 0, 0, 0, 0, 0, 0, 0, 0x80}, {op::front}})},
    };
    return all;
}

}  // namespace

FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size == 0) return 0;
    auto &m = rings();
    const std::size_t cap = m.capacity();
    auto *base = reinterpret_cast<unsigned char *>(&m.head());
    const std::size_t mapped = iso::ring_memory::header_bytes + iso::lane_count * cap;
    reader in{data + 1, data + size};
    const auto l = static_cast<iso::lane>(data[0] % 2);  // alarm or event: a poisoned lane follows either
    auto &lh = m.head().lanes[static_cast<int>(l)];

    // A fresh lane for every input (a ring as create() leaves it), and the rest of the mapping out of bounds.
    ASAN_UNPOISON_MEMORY_REGION(base, mapped);
    std::memset(m.data(l), 0, cap);
    lh.head.store(0);
    lh.tail.store(0);
    ASAN_POISON_MEMORY_REGION(base, mapped);
    ASAN_UNPOISON_MEMORY_REGION(m.data(l), cap);
    ASAN_UNPOISON_MEMORY_REGION(&lh, sizeof lh);

    iso::ring_producer producer(m);
    iso::ring_consumer consumer(m, l);
    struct pushed {
        std::uint64_t device, number, order;
        std::size_t size;
    };
    std::deque<pushed> expected;  // what honest pushes put in, while nothing hostile happened
    bool hostile = false;
    bool held = false;  // the consumer holds a copied-out front record (front() gives it again without a look)
    std::uint64_t number = 0;

    // A record the host got: bounded always; exactly the next one pushed while the runner was honest.
    const auto check = [&](const iso::ring_record *r) {
        if (r->event.size() > max_event_bytes) fuzz::die("the consumer gave an event larger than max_event_bytes");
        if (hostile) return;
        if (expected.empty()) fuzz::die("the consumer gave a record that was never pushed");
        const auto &e = expected.front();
        if (r->device != e.device || r->number != e.number || r->order != e.order ||
            !is_pattern(r->event, e.number, e.size))
            fuzz::die("the consumer gave a record other than the one pushed");
    };
    const auto popped = [&] {
        const std::uint64_t tail = lh.tail.load();
        if (tail % 8 != 0) fuzz::die("the host published an unaligned tail");
        if (!hostile && !expected.empty()) expected.pop_front();
    };

    try {
        while (in.left() > 0) {
            switch (static_cast<op>(in.take(1) % op_count)) {
            case write_bytes: {
                const std::size_t off = (lh.tail.load() + in.take(3)) & (cap - 1);
                std::size_t n = in.take(1);
                n = std::min({n, in.left(), cap - off});
                std::memcpy(m.data(l) + off, in.p, n);
                in.p += n;
                hostile = true;
                break;
            }
            case head_near:
                lh.head.store(lh.tail.load() + static_cast<std::int16_t>(in.take(2)));
                hostile = true;
                break;
            case head_raw:
                lh.head.store(in.take(8));
                hostile = true;
                break;
            case push: {
                const std::size_t n = in.take(3) % (max_event_bytes + 1);
                const std::uint64_t device = in.take(1);
                // The producer is the runner's own code and trusts its own head: keep its preconditions (an aligned
                // head at most a ring ahead of the tail), or it is no longer the honest producer being modelled.
                const std::uint64_t head = lh.head.load(), tail = lh.tail.load();
                if (head % 8 != 0 || head < tail || head - tail > cap) break;
                static std::uint8_t e[max_event_bytes];
                for (std::size_t i = 0; i < n; ++i) e[i] = pattern_at(number + 1, i);
                // The emit order counts across lanes in the runner; here, with one lane, a different series from
                // the number (so that a swapped field shows).
                if (producer.push(l, device, number + 1, (number + 1) * 3, e, n)) {
                    ++number;
                    if (!hostile) expected.push_back({device, number, number * 3, n});
                } else if (!hostile && expected.empty()) {
                    fuzz::die("an empty lane refused an event of " + std::to_string(n) + " bytes");
                }
                break;
            }
            case front:
                if (const auto *r = consumer.front()) check(r), held = true;
                else if (!hostile && !expected.empty()) fuzz::die("the consumer lost a pushed record");
                break;
            case pop: {
                const bool had = consumer.front() != nullptr;
                consumer.pop();
                if (had) popped();
                held = false;
                break;
            }
            case empty:
                if (consumer.empty() && !hostile && !expected.empty()) fuzz::die("a lane with a record is empty()");
                break;
            case drain:
                for (int i = 0; i < 256; ++i) {
                    const bool fresh = !held;
                    const auto *r = consumer.front();
                    if (!r) break;
                    check(r);
                    consumer.pop();
                    popped();
                    held = false;
                    // A record copied out just now was checked against the head as it is: the new tail must not
                    // pass it. (One held from before may: the runner has lowered its head since, and the next
                    // front() answers ring_corrupt.)
                    if (fresh && lh.tail.load() > lh.head.load())
                        fuzz::die("the host's tail passed the runner's head");
                }
                if (!hostile && !expected.empty()) fuzz::die("a drained lane still holds pushed records");
                break;
            case op_count: break;
            }
        }
    } catch (const iso::ring_corrupt &e) {
        // The expected answer to a lying runner (the host kills it); from an honest one, a bug.
        if (!hostile) fuzz::die(std::string("ring_corrupt from an honest producer: ") + e.what());
    }
    return 0;
}
