// The ABI's numbers are a promise to every plugin already built: struct sizes and offsets, version packing, status
// codes, extension ids. This test states them once more, independently of layout.h, so that editing a struct and its
// pins together still fails here; and it checks that the C and C++ compilers agree on every offset.
#include <firelink/firelink.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

extern "C" {
extern const std::size_t fl_probe_c_layout[];
extern const std::size_t fl_probe_c_layout_count;
}

namespace {

constexpr bool lp64 = sizeof(void *) == 8 && sizeof(std::size_t) == 8;

#define FL_FIELD(type, field) offsetof(type, field), sizeof(static_cast<type *>(nullptr)->field)

// Same order as layout_probe.c.
const std::vector<std::size_t> cxx_layout = {
    FL_FIELD(fl_host, struct_size), FL_FIELD(fl_host, abi_version), FL_FIELD(fl_host, host_data),
    FL_FIELD(fl_host, host_name), FL_FIELD(fl_host, host_version), FL_FIELD(fl_host, device_id),
    FL_FIELD(fl_host, emit), FL_FIELD(fl_host, log), FL_FIELD(fl_host, get_extension),
    sizeof(fl_host),

    FL_FIELD(fl_driver_descriptor, struct_size), FL_FIELD(fl_driver_descriptor, wires),
    FL_FIELD(fl_driver_descriptor, id), FL_FIELD(fl_driver_descriptor, name),
    FL_FIELD(fl_driver_descriptor, device_class), FL_FIELD(fl_driver_descriptor, description),
    FL_FIELD(fl_driver_descriptor, required_extensions), FL_FIELD(fl_driver_descriptor, flags),
    FL_FIELD(fl_driver_descriptor, commands),
    sizeof(fl_driver_descriptor),

    FL_FIELD(fl_command_descriptor, struct_size), FL_FIELD(fl_command_descriptor, name),
    FL_FIELD(fl_command_descriptor, description), FL_FIELD(fl_command_descriptor, flags),
    sizeof(fl_command_descriptor),

    FL_FIELD(fl_plugin_descriptor, struct_size), FL_FIELD(fl_plugin_descriptor, driver_count),
    FL_FIELD(fl_plugin_descriptor, id), FL_FIELD(fl_plugin_descriptor, name),
    FL_FIELD(fl_plugin_descriptor, vendor), FL_FIELD(fl_plugin_descriptor, version),
    FL_FIELD(fl_plugin_descriptor, license), FL_FIELD(fl_plugin_descriptor, url),
    FL_FIELD(fl_plugin_descriptor, description), FL_FIELD(fl_plugin_descriptor, drivers),
    sizeof(fl_plugin_descriptor),

    FL_FIELD(fl_device, struct_size), FL_FIELD(fl_device, driver_data), FL_FIELD(fl_device, start),
    FL_FIELD(fl_device, stop), FL_FIELD(fl_device, destroy), FL_FIELD(fl_device, command),
    FL_FIELD(fl_device, get_extension),
    sizeof(fl_device),

    FL_FIELD(fl_plugin_entry, struct_size), FL_FIELD(fl_plugin_entry, abi_version),
    FL_FIELD(fl_plugin_entry, negotiate), FL_FIELD(fl_plugin_entry, init),
    FL_FIELD(fl_plugin_entry, deinit), FL_FIELD(fl_plugin_entry, get_descriptor),
    FL_FIELD(fl_plugin_entry, create_device), FL_FIELD(fl_plugin_entry, get_extension),
    sizeof(fl_plugin_entry),

    FL_FIELD(fl_host_transport, struct_size), FL_FIELD(fl_host_transport, kind),
    FL_FIELD(fl_host_transport, open), FL_FIELD(fl_host_transport, write),
    FL_FIELD(fl_host_transport, request), FL_FIELD(fl_host_transport, end_request),
    FL_FIELD(fl_host_transport, close), FL_FIELD(fl_host_transport, unit),
    sizeof(fl_host_transport),

    FL_FIELD(fl_device_transport, struct_size), FL_FIELD(fl_device_transport, on_data),
    FL_FIELD(fl_device_transport, on_state),
    sizeof(fl_device_transport),

    FL_FIELD(fl_host_timer, struct_size), FL_FIELD(fl_host_timer, start), FL_FIELD(fl_host_timer, cancel),
    sizeof(fl_host_timer),

    FL_FIELD(fl_device_timer, struct_size), FL_FIELD(fl_device_timer, on_timer),
    sizeof(fl_device_timer),

    FL_FIELD(fl_plugin_identify, struct_size), FL_FIELD(fl_plugin_identify, identify),
    sizeof(fl_plugin_identify),

    FL_FIELD(fl_condition, struct_size), FL_FIELD(fl_condition, event_id),
    FL_FIELD(fl_condition, kind), FL_FIELD(fl_condition, code), FL_FIELD(fl_condition, event),
    FL_FIELD(fl_condition, event_size), FL_FIELD(fl_condition, raised_wall_ms),
    sizeof(fl_condition),

    FL_FIELD(fl_host_conditions, struct_size), FL_FIELD(fl_host_conditions, list),
    sizeof(fl_host_conditions),

    FL_V1_0_SIZEOF_HOST, FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR, FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR, FL_V1_0_SIZEOF_DEVICE,
    FL_V1_0_SIZEOF_PLUGIN_ENTRY, FL_V1_0_SIZEOF_HOST_TRANSPORT, FL_V1_0_SIZEOF_DEVICE_TRANSPORT,
    FL_V1_0_SIZEOF_HOST_TIMER, FL_V1_0_SIZEOF_DEVICE_TIMER,
    FL_CONDITIONS_1_SIZEOF_CONDITION, FL_CONDITIONS_1_SIZEOF_HOST_CONDITIONS,
};

TEST(Layout, CAndCxxCompilersAgreeOnEveryOffsetAndSize) {
    ASSERT_EQ(fl_probe_c_layout_count, cxx_layout.size());
    for (std::size_t i = 0; i < cxx_layout.size(); ++i)
        EXPECT_EQ(fl_probe_c_layout[i], cxx_layout[i]) << "entry " << i << " of the layout table";
}

// The pinned LP64 layout: every field at the offset plugins built against v1.0 expect.
TEST(Layout, HostIsPinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    EXPECT_EQ(offsetof(fl_host, struct_size), 0u);
    EXPECT_EQ(offsetof(fl_host, abi_version), 4u);
    EXPECT_EQ(offsetof(fl_host, host_data), 8u);
    EXPECT_EQ(offsetof(fl_host, host_name), 16u);
    EXPECT_EQ(offsetof(fl_host, host_version), 24u);
    EXPECT_EQ(offsetof(fl_host, device_id), 32u);
    EXPECT_EQ(offsetof(fl_host, emit), 40u);
    EXPECT_EQ(offsetof(fl_host, log), 48u);
    EXPECT_EQ(offsetof(fl_host, get_extension), 56u);
    EXPECT_EQ(sizeof(fl_host), 64u);
    EXPECT_EQ(sizeof(fl_host::struct_size), 4u);
    EXPECT_EQ(sizeof(fl_host::abi_version), 4u);
}

TEST(Layout, DescriptorsArePinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    EXPECT_EQ(offsetof(fl_driver_descriptor, struct_size), 0u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, wires), 4u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, id), 8u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, name), 16u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, device_class), 24u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, description), 32u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, required_extensions), 40u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, flags), 48u);
    EXPECT_EQ(sizeof(fl_driver_descriptor::flags), 8u);
    EXPECT_EQ(offsetof(fl_driver_descriptor, commands), 56u);  // 1.1
    EXPECT_EQ(sizeof(fl_driver_descriptor), 64u);

    EXPECT_EQ(offsetof(fl_command_descriptor, struct_size), 0u);
    EXPECT_EQ(offsetof(fl_command_descriptor, name), 8u);
    EXPECT_EQ(offsetof(fl_command_descriptor, description), 16u);
    EXPECT_EQ(offsetof(fl_command_descriptor, flags), 24u);
    EXPECT_EQ(sizeof(fl_command_descriptor), 32u);
    EXPECT_EQ(FL_COMMAND_ACTUATES, 1u);
    EXPECT_EQ(FL_COMMAND_RESTORES, 2u);
    EXPECT_EQ(FL_MAX_COMMANDS, 64u);

    EXPECT_EQ(offsetof(fl_plugin_descriptor, struct_size), 0u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, driver_count), 4u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, id), 8u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, name), 16u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, vendor), 24u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, version), 32u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, license), 40u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, url), 48u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, description), 56u);
    EXPECT_EQ(offsetof(fl_plugin_descriptor, drivers), 64u);
    EXPECT_EQ(sizeof(fl_plugin_descriptor), 72u);
}

TEST(Layout, DeviceAndEntryArePinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    EXPECT_EQ(offsetof(fl_device, struct_size), 0u);
    EXPECT_EQ(offsetof(fl_device, driver_data), 8u);
    EXPECT_EQ(offsetof(fl_device, start), 16u);
    EXPECT_EQ(offsetof(fl_device, stop), 24u);
    EXPECT_EQ(offsetof(fl_device, destroy), 32u);
    EXPECT_EQ(offsetof(fl_device, command), 40u);
    EXPECT_EQ(offsetof(fl_device, get_extension), 48u);
    EXPECT_EQ(sizeof(fl_device), 56u);

    EXPECT_EQ(offsetof(fl_plugin_entry, struct_size), 0u);
    EXPECT_EQ(offsetof(fl_plugin_entry, abi_version), 4u);
    EXPECT_EQ(offsetof(fl_plugin_entry, negotiate), 8u);
    EXPECT_EQ(offsetof(fl_plugin_entry, init), 16u);
    EXPECT_EQ(offsetof(fl_plugin_entry, deinit), 24u);
    EXPECT_EQ(offsetof(fl_plugin_entry, get_descriptor), 32u);
    EXPECT_EQ(offsetof(fl_plugin_entry, create_device), 40u);
    EXPECT_EQ(offsetof(fl_plugin_entry, get_extension), 48u);
    EXPECT_EQ(sizeof(fl_plugin_entry), 56u);
}

TEST(Layout, ExtensionsArePinned) {
    if (!lp64) GTEST_SKIP() << "layout pinned for LP64 only";
    EXPECT_EQ(offsetof(fl_host_transport, struct_size), 0u);
    EXPECT_EQ(offsetof(fl_host_transport, kind), 8u);
    EXPECT_EQ(offsetof(fl_host_transport, open), 16u);
    EXPECT_EQ(offsetof(fl_host_transport, write), 24u);
    EXPECT_EQ(offsetof(fl_host_transport, request), 32u);
    EXPECT_EQ(offsetof(fl_host_transport, end_request), 40u);
    EXPECT_EQ(offsetof(fl_host_transport, close), 48u);
    EXPECT_EQ(offsetof(fl_host_transport, unit), 56u);
    EXPECT_EQ(sizeof(fl_host_transport), 64u);

    EXPECT_EQ(offsetof(fl_device_transport, on_data), 8u);
    EXPECT_EQ(offsetof(fl_device_transport, on_state), 16u);
    EXPECT_EQ(sizeof(fl_device_transport), 24u);

    EXPECT_EQ(offsetof(fl_host_timer, start), 8u);
    EXPECT_EQ(offsetof(fl_host_timer, cancel), 16u);
    EXPECT_EQ(sizeof(fl_host_timer), 24u);

    EXPECT_EQ(offsetof(fl_device_timer, on_timer), 8u);
    EXPECT_EQ(offsetof(fl_plugin_identify, identify), 8u);
    EXPECT_EQ(sizeof(fl_plugin_identify), 16u);
    EXPECT_EQ(FL_V1_0_SIZEOF_PLUGIN_IDENTIFY, sizeof(fl_plugin_identify));
    EXPECT_EQ(sizeof(fl_device_timer), 16u);

    EXPECT_EQ(offsetof(fl_condition, event_id), 8u);
    EXPECT_EQ(offsetof(fl_condition, kind), 16u);
    EXPECT_EQ(offsetof(fl_condition, code), 24u);
    EXPECT_EQ(offsetof(fl_condition, event), 32u);
    EXPECT_EQ(offsetof(fl_condition, event_size), 40u);
    EXPECT_EQ(offsetof(fl_condition, raised_wall_ms), 48u);
    EXPECT_EQ(sizeof(fl_condition), 56u);
    EXPECT_EQ(FL_CONDITIONS_1_SIZEOF_CONDITION, sizeof(fl_condition));
    EXPECT_EQ(offsetof(fl_host_conditions, list), 8u);
    EXPECT_EQ(sizeof(fl_host_conditions), 16u);
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
