// The ABI's numbers are a promise to every plugin already built: struct sizes and offsets, version packing, status
// codes, extension ids. This test states them once more, independently of layout.h (the offsets and sizes in
// layout_table.h), so that editing a struct and its pins together still fails here; and it checks that the C and C++
// compilers agree on every offset.
#include <firelink/firelink.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <string_view>
#include <vector>

#include "layout_table.h"

extern "C" {
extern const std::size_t fl_probe_c_layout[];
extern const std::size_t fl_probe_c_layout_count;
}

namespace {

constexpr bool lp64 = sizeof(void *) == 8 && sizeof(std::size_t) == 8;

// The C++ compiler's view, built from the same table as layout_probe.c builds the C compiler's.
#define FL_CXX_FIELD(type, field, lp64_offset) offsetof(type, field), sizeof(static_cast<type *>(nullptr)->field),
#define FL_CXX_SIZE(type, lp64_size) sizeof(type),
const std::vector<std::size_t> cxx_layout = {FL_TEST_LAYOUT(FL_CXX_FIELD, FL_CXX_SIZE) FL_TEST_LAYOUT_MINIMUM_SIZES};

TEST(Layout, CAndCxxCompilersAgreeOnEveryOffsetAndSize) {
    ASSERT_EQ(fl_probe_c_layout_count, cxx_layout.size());
    for (std::size_t i = 0; i < cxx_layout.size(); ++i)
        EXPECT_EQ(fl_probe_c_layout[i], cxx_layout[i]) << "entry " << i << " of the layout table";
}

// One pinned number of layout_table.h: a field's offset, or the struct's size (what: "sizeof").
struct pin {
    std::string_view type, what;
    std::size_t actual, lp64;
};
#define FL_PIN_FIELD(type, field, lp64_offset) pin{#type, #field, offsetof(type, field), lp64_offset},
#define FL_PIN_SIZE(type, lp64_size) pin{#type, "sizeof", sizeof(type), lp64_size},
const pin pins[] = {FL_TEST_LAYOUT(FL_PIN_FIELD, FL_PIN_SIZE)};

// Every field of these structs is at its pinned offset, and each struct has its pinned size.
void expect_pinned(std::initializer_list<std::string_view> types) {
    for (std::string_view type : types) {
        auto is_of_type = [&](const pin &p) { return p.type == type; };
        EXPECT_TRUE(std::any_of(std::begin(pins), std::end(pins), is_of_type)) << type << " has no pins";
        for (const pin &p : pins) {
            if (!is_of_type(p)) continue;
            EXPECT_EQ(p.actual, p.lp64) << type << " " << p.what;
        }
    }
}

// The pinned LP64 layout: every field at the offset plugins built against v1.0 expect.
TEST(Layout, HostIsPinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    expect_pinned({"fl_host"});
    EXPECT_EQ(sizeof(fl_host::struct_size), 4u);
    EXPECT_EQ(sizeof(fl_host::abi_version), 4u);
}

TEST(Layout, DescriptorsArePinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    expect_pinned({"fl_driver_descriptor", "fl_command_descriptor", "fl_plugin_descriptor"});
    EXPECT_EQ(sizeof(fl_driver_descriptor::flags), 8u);
    EXPECT_EQ(FL_COMMAND_ACTUATES, 1u);
    EXPECT_EQ(FL_COMMAND_RESTORES, 2u);
    EXPECT_EQ(FL_MAX_COMMANDS, 64u);
}

TEST(Layout, DeviceAndEntryArePinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    expect_pinned({"fl_device", "fl_plugin_entry"});
}

TEST(Layout, ExtensionsArePinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    expect_pinned({"fl_host_transport", "fl_device_transport", "fl_host_timer", "fl_device_timer",
                   "fl_plugin_identify", "fl_condition", "fl_host_conditions"});
    EXPECT_EQ(FL_V1_0_SIZEOF_PLUGIN_IDENTIFY, sizeof(fl_plugin_identify));
    EXPECT_EQ(FL_CONDITIONS_1_SIZEOF_CONDITION, sizeof(fl_condition));
    EXPECT_EQ(FL_CONDITIONS_1_SIZEOF_HOST_CONDITIONS, sizeof(fl_host_conditions));
}

// The v1.0 minimum sizes never change when a minor appends a field: that is what lets a 1.1 host accept a 1.0
// plugin. Stated as the v1.0 numbers (LP64), not as sizeof, since 1.1 grew fl_driver_descriptor.
TEST(Layout, V1_0MinimumSizesNeverChange) {
    static_assert(FL_ABI_VERSION_MAJOR == 1 && FL_ABI_VERSION_MINOR == 1,
                  "a new minor: add its FL_V1_n_SIZEOF_* pins below and check the v1.0 ones still hold");
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    EXPECT_EQ(FL_V1_0_SIZEOF_HOST, 64u);
    EXPECT_EQ(FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR, 56u);
    EXPECT_EQ(FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR, 72u);
    EXPECT_EQ(FL_V1_0_SIZEOF_DEVICE, 56u);
    EXPECT_EQ(FL_V1_0_SIZEOF_PLUGIN_ENTRY, 56u);
    EXPECT_EQ(FL_V1_0_SIZEOF_HOST_TRANSPORT, 64u);
    EXPECT_EQ(FL_V1_0_SIZEOF_DEVICE_TRANSPORT, 24u);
    EXPECT_EQ(FL_V1_0_SIZEOF_HOST_TIMER, 24u);
    EXPECT_EQ(FL_V1_0_SIZEOF_DEVICE_TIMER, 16u);
    // Unchanged by 1.1: their sizes are still the v1.0 sizes.
    EXPECT_EQ(FL_V1_0_SIZEOF_HOST, sizeof(fl_host));
    EXPECT_EQ(FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR, sizeof(fl_plugin_descriptor));
    EXPECT_EQ(FL_V1_0_SIZEOF_DEVICE, sizeof(fl_device));
    EXPECT_EQ(FL_V1_0_SIZEOF_PLUGIN_ENTRY, sizeof(fl_plugin_entry));
    // 1.1 appended fl_driver_descriptor.commands and added fl_command_descriptor.
    EXPECT_LT(FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR, sizeof(fl_driver_descriptor));
    EXPECT_EQ(FL_V1_1_SIZEOF_DRIVER_DESCRIPTOR, sizeof(fl_driver_descriptor));
    EXPECT_EQ(FL_V1_1_SIZEOF_COMMAND_DESCRIPTOR, sizeof(fl_command_descriptor));
    // They are uint32_t, so they compare with struct_size without a cast.
    static_assert(std::is_same_v<decltype(FL_V1_0_SIZEOF_HOST), std::uint32_t>);
    static_assert(std::is_same_v<decltype(FL_V1_1_SIZEOF_DRIVER_DESCRIPTOR), std::uint32_t>);
}

// ---- FL_HAS_FIELD -------------------------------------------------------------------------------------------

TEST(HasField, TrueExactlyWhenStructSizeCoversTheWholeField) {
    fl_host host{};
    host.struct_size = sizeof(fl_host);
    EXPECT_TRUE(FL_HAS_FIELD(&host, fl_host, struct_size));
    EXPECT_TRUE(FL_HAS_FIELD(&host, fl_host, emit));
    EXPECT_TRUE(FL_HAS_FIELD(&host, fl_host, get_extension));

    // An older, shorter host: ends just after log.
    host.struct_size = static_cast<std::uint32_t>(offsetof(fl_host, log) + sizeof(host.log));
    EXPECT_TRUE(FL_HAS_FIELD(&host, fl_host, log));
    EXPECT_FALSE(FL_HAS_FIELD(&host, fl_host, get_extension));

    // One byte short of the field's end is not enough: a half-present pointer must not be read.
    host.struct_size = static_cast<std::uint32_t>(offsetof(fl_host, log) + sizeof(host.log) - 1);
    EXPECT_FALSE(FL_HAS_FIELD(&host, fl_host, log));
    EXPECT_TRUE(FL_HAS_FIELD(&host, fl_host, emit));

    host.struct_size = 0;
    EXPECT_FALSE(FL_HAS_FIELD(&host, fl_host, struct_size));
    host.struct_size = 4;
    EXPECT_TRUE(FL_HAS_FIELD(&host, fl_host, struct_size));
    EXPECT_FALSE(FL_HAS_FIELD(&host, fl_host, abi_version));
}

TEST(HasField, FalseForNull) {
    const fl_host *none = nullptr;
    EXPECT_FALSE(FL_HAS_FIELD(none, fl_host, struct_size));
    const fl_device *no_device = nullptr;
    EXPECT_FALSE(FL_HAS_FIELD(no_device, fl_device, start));
}

TEST(HasField, WorksOnEveryStructThatStartsWithItsSize) {
    fl_device dev{};
    dev.struct_size = FL_V1_0_SIZEOF_DEVICE;
    EXPECT_TRUE(FL_HAS_FIELD(&dev, fl_device, get_extension));
    dev.struct_size = static_cast<std::uint32_t>(offsetof(fl_device, get_extension));
    EXPECT_FALSE(FL_HAS_FIELD(&dev, fl_device, get_extension));
    EXPECT_TRUE(FL_HAS_FIELD(&dev, fl_device, command));

    fl_driver_descriptor d{};
    d.struct_size = static_cast<std::uint32_t>(offsetof(fl_driver_descriptor, flags));
    EXPECT_FALSE(FL_HAS_FIELD(&d, fl_driver_descriptor, flags));
    d.struct_size = FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR;
    EXPECT_TRUE(FL_HAS_FIELD(&d, fl_driver_descriptor, flags));
}

// ---- Versions -----------------------------------------------------------------------------------------------

TEST(Version, RoundTripsEveryField) {
    struct triple { std::uint32_t major, minor, patch; };
    for (auto t : {triple{0, 0, 0}, triple{1, 0, 0}, triple{1, 2, 3}, triple{1, 1023, 4095}, triple{2, 10, 100},
                   triple{1023, 1023, 4095}, triple{1, 0, 4095}, triple{1, 1023, 0}}) {
        std::uint32_t v = FL_MAKE_VERSION(t.major, t.minor, t.patch);
        EXPECT_EQ(FL_VERSION_MAJOR(v), t.major) << t.major << "." << t.minor << "." << t.patch;
        EXPECT_EQ(FL_VERSION_MINOR(v), t.minor) << t.major << "." << t.minor << "." << t.patch;
        EXPECT_EQ(FL_VERSION_PATCH(v), t.patch) << t.major << "." << t.minor << "." << t.patch;
    }
}

TEST(Version, PackingIsTheDocumentedOne) {
    // major 10 bits . minor 10 bits . patch 12 bits, the Vulkan way: this exact number is on the wire of every entry.
    EXPECT_EQ(FL_MAKE_VERSION(1, 0, 0), 0x00400000u);
    EXPECT_EQ(FL_MAKE_VERSION(1, 2, 3), 0x00402003u);
    EXPECT_EQ(FL_ABI_VERSION, FL_MAKE_VERSION(FL_ABI_VERSION_MAJOR, FL_ABI_VERSION_MINOR, FL_ABI_VERSION_PATCH));
    EXPECT_EQ(FL_VERSION_MAJOR(FL_ABI_VERSION), 1u);
    static_assert(std::is_same_v<decltype(FL_MAKE_VERSION(1, 0, 0)), std::uint32_t>);
}

TEST(Version, AFieldThatOverflowsDoesNotBleedIntoTheNextOne) {
    // Majors 0 and 2 leave bit 22 clear, so a minor that leaked into it would show.
    for (std::uint32_t major : {0u, 1u, 2u}) {
        EXPECT_EQ(FL_VERSION_MAJOR(FL_MAKE_VERSION(major, 1024, 0)), major);
        EXPECT_EQ(FL_VERSION_MAJOR(FL_MAKE_VERSION(major, 0x3FFFFF, 0)), major);
        EXPECT_EQ(FL_VERSION_MINOR(FL_MAKE_VERSION(major, 0, 4096)), 0u);
        EXPECT_EQ(FL_VERSION_MINOR(FL_MAKE_VERSION(major, 0, 0xFFFFF)), 0u);
        EXPECT_EQ(FL_VERSION_MAJOR(FL_MAKE_VERSION(major, 0, 4096)), major);
    }
}

TEST(Version, OrdersNumericallyNotLexically) {
    EXPECT_LT(FL_MAKE_VERSION(1, 2, 0), FL_MAKE_VERSION(1, 10, 0));
    EXPECT_LT(FL_MAKE_VERSION(1, 10, 0), FL_MAKE_VERSION(2, 0, 0));
    EXPECT_LT(FL_MAKE_VERSION(1, 2, 0), FL_MAKE_VERSION(2, 0, 0));
    EXPECT_LT(FL_MAKE_VERSION(1, 0, 9), FL_MAKE_VERSION(1, 0, 10));
    EXPECT_LT(FL_MAKE_VERSION(1, 0, 4095), FL_MAKE_VERSION(1, 1, 0));
    EXPECT_LT(FL_MAKE_VERSION(1, 1023, 4095), FL_MAKE_VERSION(2, 0, 0));
}

// ---- Stable numbers and names -------------------------------------------------------------------------------

TEST(StatusCodes, ValuesNeverChange) {
    static_assert(std::is_same_v<fl_status, std::int32_t>);
    EXPECT_EQ(FL_OK, 0);
    EXPECT_EQ(FL_ERROR, -1);
    EXPECT_EQ(FL_MISUSE, -2);
    EXPECT_EQ(FL_INCOMPATIBLE, -3);
    EXPECT_EQ(FL_INVALID_ARGUMENT, -4);
    EXPECT_EQ(FL_NO_MEMORY, -5);
    EXPECT_EQ(FL_UNSUPPORTED, -6);
    EXPECT_EQ(FL_BUSY, -7);
    EXPECT_EQ(FL_IO, -8);
    EXPECT_EQ(FL_TIMEOUT, -9);
    EXPECT_EQ(FL_CLOSED, -10);
    EXPECT_EQ(FL_NOT_FOUND, -11);
}

TEST(StableNumbers, LogLevelsTransportKindsAndLinkStates) {
    EXPECT_EQ(FL_LOG_TRACE, 0);
    EXPECT_EQ(FL_LOG_DEBUG, 1);
    EXPECT_EQ(FL_LOG_INFO, 2);
    EXPECT_EQ(FL_LOG_WARN, 3);
    EXPECT_EQ(FL_LOG_ERROR, 4);

    EXPECT_EQ(FL_TRANSPORT_SERIAL, 1);
    EXPECT_EQ(FL_TRANSPORT_RS485_BUS, 2);
    EXPECT_EQ(FL_TRANSPORT_TCP_CLIENT, 3);
    EXPECT_EQ(FL_TRANSPORT_TCP_ACCEPTED, 4);
    EXPECT_EQ(FL_TRANSPORT_UDP, 5);

    EXPECT_EQ(FL_LINK_CLOSED, 0);
    EXPECT_EQ(FL_LINK_OPENING, 1);
    EXPECT_EQ(FL_LINK_OPEN, 2);
    EXPECT_EQ(FL_LINK_LOST, 3);
    EXPECT_EQ(FL_LINK_FAILED, 4);
    EXPECT_EQ(FL_LINK_REPLY_TIMEOUT, 5);

    EXPECT_EQ(FL_WIRE_SERIAL, 1u);
    EXPECT_EQ(FL_WIRE_RS485_BUS, 2u);
    EXPECT_EQ(FL_WIRE_TCP_CLIENT, 4u);
    EXPECT_EQ(FL_WIRE_TCP_ACCEPTED, 8u);
    EXPECT_EQ(FL_WIRE_UDP, 16u);
    EXPECT_EQ(FL_DRIVER_OWN_IO, std::uint64_t{1});

    EXPECT_EQ(FL_INVALID_TIMER_ID, std::uint64_t{0});
    EXPECT_EQ(FL_TIMER_ONESHOT, 1u);
}

TEST(StableNames, ExtensionIdsClassesAndTheEntrySymbol) {
    // An extension id never changes once published: plugins look them up by these exact strings.
    EXPECT_EQ(std::string_view(FL_EXT_TIMER), "firelink.timer/1");
    EXPECT_EQ(std::string_view(FL_EXT_TRANSPORT), "firelink.transport/1");
    EXPECT_EQ(std::string_view(FL_EXT_CONDITIONS), "firelink.conditions/1");
    EXPECT_EQ(std::string_view(FL_ENTRY_SYMBOL), "firelink_plugin_entry");

    EXPECT_EQ(std::string_view(FL_CLASS_ARC_FAULT_BREAKER), "arc_fault_breaker");
    EXPECT_EQ(std::string_view(FL_CLASS_GAS_SHUTOFF_VALVE), "gas_shutoff_valve");
    EXPECT_EQ(std::string_view(FL_CLASS_PYROLYSIS_DETECTOR), "pyrolysis_detector");
    EXPECT_EQ(std::string_view(FL_CLASS_FIRE_PANEL), "fire_panel");
    EXPECT_EQ(std::string_view(FL_CLASS_VENDOR_PREFIX), "vendor:");
}

}  // namespace
