/* The ABI layout that layout_test.cpp checks, stated once for both of its views: every field of every struct with its
 * pinned LP64 offset, and each struct's pinned LP64 size. layout_probe.c expands it as C and layout_test.cpp as C++, so
 * that the two compilers are compared field by field; the test also checks the pins. It is written independently of
 * layout.h, so that editing a struct and layout.h's pins together still fails the test.
 *
 * FL_TEST_LAYOUT(FIELD, SIZE) expands FIELD(type, field, lp64_offset) for each field, in order, then
 * SIZE(type, lp64_size), struct after struct. */
#ifndef FIRELINK_TEST_LAYOUT_TABLE_H
#define FIRELINK_TEST_LAYOUT_TABLE_H

#include <firelink/firelink.h>

#define FL_TEST_LAYOUT(FIELD, SIZE)                                                                                   \
    FIELD(fl_host, struct_size, 0) FIELD(fl_host, abi_version, 4) FIELD(fl_host, host_data, 8)                        \
    FIELD(fl_host, host_name, 16) FIELD(fl_host, host_version, 24) FIELD(fl_host, device_id, 32)                      \
    FIELD(fl_host, emit, 40) FIELD(fl_host, log, 48) FIELD(fl_host, get_extension, 56)                                \
    SIZE(fl_host, 64)                                                                                                 \
                                                                                                                      \
    FIELD(fl_driver_descriptor, struct_size, 0) FIELD(fl_driver_descriptor, wires, 4)                                 \
    FIELD(fl_driver_descriptor, id, 8) FIELD(fl_driver_descriptor, name, 16)                                          \
    FIELD(fl_driver_descriptor, device_class, 24) FIELD(fl_driver_descriptor, description, 32)                        \
    FIELD(fl_driver_descriptor, required_extensions, 40) FIELD(fl_driver_descriptor, flags, 48)                       \
    FIELD(fl_driver_descriptor, commands, 56) /* 1.1 */                                                               \
    SIZE(fl_driver_descriptor, 64)                                                                                    \
                                                                                                                      \
    FIELD(fl_command_descriptor, struct_size, 0) FIELD(fl_command_descriptor, name, 8)                                \
    FIELD(fl_command_descriptor, description, 16) FIELD(fl_command_descriptor, flags, 24)                             \
    SIZE(fl_command_descriptor, 32)                                                                                   \
                                                                                                                      \
    FIELD(fl_plugin_descriptor, struct_size, 0) FIELD(fl_plugin_descriptor, driver_count, 4)                          \
    FIELD(fl_plugin_descriptor, id, 8) FIELD(fl_plugin_descriptor, name, 16)                                          \
    FIELD(fl_plugin_descriptor, vendor, 24) FIELD(fl_plugin_descriptor, version, 32)                                  \
    FIELD(fl_plugin_descriptor, license, 40) FIELD(fl_plugin_descriptor, url, 48)                                     \
    FIELD(fl_plugin_descriptor, description, 56) FIELD(fl_plugin_descriptor, drivers, 64)                             \
    SIZE(fl_plugin_descriptor, 72)                                                                                    \
                                                                                                                      \
    FIELD(fl_device, struct_size, 0) FIELD(fl_device, driver_data, 8) FIELD(fl_device, start, 16)                    \
    FIELD(fl_device, stop, 24) FIELD(fl_device, destroy, 32) FIELD(fl_device, command, 40)                            \
    FIELD(fl_device, get_extension, 48)                                                                               \
    SIZE(fl_device, 56)                                                                                               \
                                                                                                                      \
    FIELD(fl_plugin_entry, struct_size, 0) FIELD(fl_plugin_entry, abi_version, 4)                                     \
    FIELD(fl_plugin_entry, negotiate, 8) FIELD(fl_plugin_entry, init, 16)                                             \
    FIELD(fl_plugin_entry, deinit, 24) FIELD(fl_plugin_entry, get_descriptor, 32)                                     \
    FIELD(fl_plugin_entry, create_device, 40) FIELD(fl_plugin_entry, get_extension, 48)                               \
    SIZE(fl_plugin_entry, 56)                                                                                         \
                                                                                                                      \
    FIELD(fl_host_transport, struct_size, 0) FIELD(fl_host_transport, kind, 8)                                        \
    FIELD(fl_host_transport, open, 16) FIELD(fl_host_transport, write, 24)                                            \
    FIELD(fl_host_transport, request, 32) FIELD(fl_host_transport, end_request, 40)                                   \
    FIELD(fl_host_transport, close, 48) FIELD(fl_host_transport, unit, 56)                                            \
    SIZE(fl_host_transport, 64)                                                                                       \
                                                                                                                      \
    FIELD(fl_device_transport, struct_size, 0) FIELD(fl_device_transport, on_data, 8)                                 \
    FIELD(fl_device_transport, on_state, 16)                                                                          \
    SIZE(fl_device_transport, 24)                                                                                     \
                                                                                                                      \
    FIELD(fl_host_timer, struct_size, 0) FIELD(fl_host_timer, start, 8) FIELD(fl_host_timer, cancel, 16)              \
    SIZE(fl_host_timer, 24)                                                                                           \
                                                                                                                      \
    FIELD(fl_device_timer, struct_size, 0) FIELD(fl_device_timer, on_timer, 8)                                        \
    SIZE(fl_device_timer, 16)                                                                                         \
                                                                                                                      \
    FIELD(fl_plugin_identify, struct_size, 0) FIELD(fl_plugin_identify, identify, 8)                                  \
    SIZE(fl_plugin_identify, 16)                                                                                      \
                                                                                                                      \
    FIELD(fl_condition, struct_size, 0) FIELD(fl_condition, event_id, 8)                                              \
    FIELD(fl_condition, kind, 16) FIELD(fl_condition, code, 24) FIELD(fl_condition, event, 32)                        \
    FIELD(fl_condition, event_size, 40) FIELD(fl_condition, raised_wall_ms, 48)                                       \
    SIZE(fl_condition, 56)                                                                                            \
                                                                                                                      \
    FIELD(fl_host_conditions, struct_size, 0) FIELD(fl_host_conditions, list, 8)                                      \
    SIZE(fl_host_conditions, 16)

/* The minimum sizes layout.h derives from the layout, as each compiler computes them. */
#define FL_TEST_LAYOUT_MINIMUM_SIZES                                                                                  \
    FL_V1_0_SIZEOF_HOST, FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR, FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR, FL_V1_0_SIZEOF_DEVICE,   \
        FL_V1_0_SIZEOF_PLUGIN_ENTRY, FL_V1_0_SIZEOF_HOST_TRANSPORT, FL_V1_0_SIZEOF_DEVICE_TRANSPORT,                  \
        FL_V1_0_SIZEOF_HOST_TIMER, FL_V1_0_SIZEOF_DEVICE_TIMER, FL_CONDITIONS_1_SIZEOF_CONDITION,                     \
        FL_CONDITIONS_1_SIZEOF_HOST_CONDITIONS

#endif /* FIRELINK_TEST_LAYOUT_TABLE_H */
