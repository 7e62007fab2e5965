// driver.hpp's accessor for firelink.conditions/1: open_conditions() copies the host's list, oldest first, into
// firelink::open_condition values that outlive the call, and is empty on a host without the extension.
#include <firelink/driver.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

// A fake host that lists what it is given; `size` lets a test present an older, smaller fl_condition.
struct fake_host {
    struct entry {
        std::string event_id, kind, code;
        std::vector<std::uint8_t> event;
        std::int64_t wall_ms;
    };
    std::vector<entry> open;
    bool with_extension = true;
    std::uint32_t condition_size = sizeof(fl_condition);
    int list_calls = 0;

    fl_host abi{};
    fl_host_conditions conditions{};

    fake_host() {
        abi.struct_size = sizeof(fl_host);
        abi.abi_version = FL_ABI_VERSION;
        abi.host_data = this;
        abi.host_name = "fake-host";
        abi.host_version = "0.0.0";
        abi.device_id = "dev-1";
        abi.emit = [](const fl_host *, const std::uint8_t *, std::size_t) { return FL_OK; };
        abi.log = [](const fl_host *, std::int32_t, const char *) {};
        abi.get_extension = [](const fl_host *h, const char *id) -> const void * {
            auto &self = *static_cast<fake_host *>(h->host_data);
            return self.with_extension && std::strcmp(id, FL_EXT_CONDITIONS) == 0 ? &self.conditions : nullptr;
        };
        conditions.struct_size = sizeof(fl_host_conditions);
        conditions.list = [](const fl_host *h, void (*visit)(void *, const fl_condition *), void *context) {
            auto &self = *static_cast<fake_host *>(h->host_data);
            ++self.list_calls;
            for (auto &e : self.open) {
                const fl_condition c{.struct_size = self.condition_size, .event_id = e.event_id.c_str(),
                                     .kind = e.kind.c_str(), .code = e.code.c_str(), .event = e.event.data(),
                                     .event_size = e.event.size(), .raised_wall_ms = e.wall_ms};
                visit(context, &c);
                // The pointers die with the visit: the accessor must have copied them.
                std::fill(e.event.begin(), e.event.end(), 0);
                e.event_id.assign(e.event_id.size(), '?');
            }
            return self.open.size();
        };
    }
};

// A vendor's device, to reach the protected accessor of the base class.
class reader : public firelink::device {
public:
    explicit reader(firelink::host_handle h) : device(h) {}
    using device::open_conditions;
};

}  // namespace

TEST(ConditionsAccessor, CopiesTheHostsListOldestFirst) {
    fake_host host;
    const auto alarm = firelink::event{firelink::event_kind::alarm, "zone_alarm"}.id("z-1").message("zone 1").pack();
    host.open.push_back({"z-1", "alarm", "zone_alarm", alarm, 1700000000000});
    host.open.push_back({"f-2", "fault", "sensor_fault", {0x80}, 1700000000500});
    reader dev{firelink::host_handle(&host.abi)};
    const auto list = dev.open_conditions();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].event_id, "z-1");
    EXPECT_EQ(list[0].kind, "alarm");
    EXPECT_EQ(list[0].code, "zone_alarm");
    EXPECT_EQ(list[0].event, alarm);
    EXPECT_EQ(list[0].raised_wall_ms, 1700000000000);
    EXPECT_EQ(firelink::config(list[0].event.data(), list[0].event.size()).get<std::string>("message", ""), "zone 1");
    EXPECT_EQ(list[1].event_id, "f-2");
    EXPECT_EQ(list[1].kind, "fault");
    EXPECT_EQ(list[1].event, std::vector<std::uint8_t>{0x80});
    EXPECT_EQ(host.list_calls, 1);
}

TEST(ConditionsAccessor, IsEmptyOnAHostWithoutTheExtension) {
    fake_host host;
    host.with_extension = false;
    host.open.push_back({"z-1", "alarm", "zone_alarm", {0x80}, 1});
    firelink::host_handle h(&host.abi);
    EXPECT_FALSE(h.has_conditions());
    EXPECT_TRUE(reader{h}.open_conditions().empty());
    EXPECT_EQ(host.list_calls, 0);
}

TEST(ConditionsAccessor, SkipsAConditionTooSmallToHoldItsFields) {
    fake_host host;
    host.condition_size = FL_CONDITIONS_1_SIZEOF_CONDITION - 8;  // no raised_wall_ms: not a firelink.conditions/1 one
    host.open.push_back({"z-1", "alarm", "zone_alarm", {0x80}, 1});
    EXPECT_TRUE(reader{firelink::host_handle(&host.abi)}.open_conditions().empty());
}

TEST(ConditionsAccessor, AnEmptyListIsEmpty) {
    fake_host host;
    firelink::host_handle h(&host.abi);
    EXPECT_TRUE(h.has_conditions());
    EXPECT_TRUE(h.open_conditions().empty());
    EXPECT_EQ(host.list_calls, 1);
}
