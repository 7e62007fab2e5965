/* firelink v1: the pinned memory layout of every ABI struct on LP64 targets (x86_64, aarch64, riscv64).
 *
 * Structs only grow at the end. If one of these assertions fails, the struct was reordered or a field changed type,
 * which breaks every plugin built before: put the field back and append the new one instead. Compiled as part of
 * firelink.h so that a vendor's unusual compiler flags (-fpack-struct, ...) fail the build instead of the field.
 */
#ifndef FIRELINK_LAYOUT_H
#define FIRELINK_LAYOUT_H

#include "plugin.h"
#include "ext/conditions.h"
#include "ext/commit.h"
#include "ext/identify.h"
#include "ext/timer.h"
#include "ext/transport.h"

/* C99 has no _Static_assert: a negative array size fails the build the same way, in every standard. */
#define FL_LAYOUT_JOIN2(a, b) a##b
#define FL_LAYOUT_JOIN(a, b) FL_LAYOUT_JOIN2(a, b)
#define FL_LAYOUT_ASSERT(cond) \
    typedef char FL_LAYOUT_JOIN(fl_layout_assert_line_, __LINE__)[(cond) ? 1 : -1]

#if defined(UINTPTR_MAX) && UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu

FL_LAYOUT_ASSERT(offsetof(fl_host, struct_size) == 0);
FL_LAYOUT_ASSERT(offsetof(fl_host, abi_version) == 4);
FL_LAYOUT_ASSERT(offsetof(fl_host, host_data) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_host, host_name) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_host, host_version) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_host, device_id) == 32);
FL_LAYOUT_ASSERT(offsetof(fl_host, emit) == 40);
FL_LAYOUT_ASSERT(offsetof(fl_host, log) == 48);
FL_LAYOUT_ASSERT(offsetof(fl_host, get_extension) == 56);
FL_LAYOUT_ASSERT(sizeof(fl_host) == 64);

FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, struct_size) == 0);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, wires) == 4);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, id) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, name) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, device_class) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, description) == 32);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, required_extensions) == 40);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, flags) == 48);
FL_LAYOUT_ASSERT(offsetof(fl_driver_descriptor, commands) == 56);  /* 1.1 */
FL_LAYOUT_ASSERT(sizeof(fl_driver_descriptor) == 64);

FL_LAYOUT_ASSERT(offsetof(fl_command_descriptor, struct_size) == 0);
FL_LAYOUT_ASSERT(offsetof(fl_command_descriptor, name) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_command_descriptor, description) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_command_descriptor, flags) == 24);
FL_LAYOUT_ASSERT(sizeof(fl_command_descriptor) == 32);

FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, struct_size) == 0);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, driver_count) == 4);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, id) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, name) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, vendor) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, version) == 32);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, license) == 40);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, url) == 48);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, description) == 56);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_descriptor, drivers) == 64);
FL_LAYOUT_ASSERT(sizeof(fl_plugin_descriptor) == 72);

FL_LAYOUT_ASSERT(offsetof(fl_device, struct_size) == 0);
FL_LAYOUT_ASSERT(offsetof(fl_device, driver_data) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_device, start) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_device, stop) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_device, destroy) == 32);
FL_LAYOUT_ASSERT(offsetof(fl_device, command) == 40);
FL_LAYOUT_ASSERT(offsetof(fl_device, get_extension) == 48);
FL_LAYOUT_ASSERT(sizeof(fl_device) == 56);

FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, struct_size) == 0);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, abi_version) == 4);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, negotiate) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, init) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, deinit) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, get_descriptor) == 32);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, create_device) == 40);
FL_LAYOUT_ASSERT(offsetof(fl_plugin_entry, get_extension) == 48);
FL_LAYOUT_ASSERT(sizeof(fl_plugin_entry) == 56);

FL_LAYOUT_ASSERT(offsetof(fl_host_transport, kind) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_host_transport, open) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_host_transport, write) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_host_transport, request) == 32);
FL_LAYOUT_ASSERT(offsetof(fl_host_transport, end_request) == 40);
FL_LAYOUT_ASSERT(offsetof(fl_host_transport, close) == 48);
FL_LAYOUT_ASSERT(offsetof(fl_host_transport, unit) == 56);
FL_LAYOUT_ASSERT(sizeof(fl_host_transport) == 64);
FL_LAYOUT_ASSERT(offsetof(fl_device_transport, on_data) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_device_transport, on_state) == 16);
FL_LAYOUT_ASSERT(sizeof(fl_device_transport) == 24);

FL_LAYOUT_ASSERT(offsetof(fl_host_timer, start) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_host_timer, cancel) == 16);
FL_LAYOUT_ASSERT(sizeof(fl_host_timer) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_device_timer, on_timer) == 8);
FL_LAYOUT_ASSERT(sizeof(fl_device_timer) == 16);

FL_LAYOUT_ASSERT(offsetof(fl_plugin_identify, identify) == 8);
FL_LAYOUT_ASSERT(sizeof(fl_plugin_identify) == 16);

FL_LAYOUT_ASSERT(offsetof(fl_condition, event_id) == 8);
FL_LAYOUT_ASSERT(offsetof(fl_condition, kind) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_condition, code) == 24);
FL_LAYOUT_ASSERT(offsetof(fl_condition, event) == 32);
FL_LAYOUT_ASSERT(offsetof(fl_condition, event_size) == 40);
FL_LAYOUT_ASSERT(offsetof(fl_condition, raised_wall_ms) == 48);
FL_LAYOUT_ASSERT(sizeof(fl_condition) == 56);
FL_LAYOUT_ASSERT(offsetof(fl_host_conditions, list) == 8);
FL_LAYOUT_ASSERT(sizeof(fl_host_conditions) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_host_commit, emitted) == 8);
FL_LAYOUT_ASSERT(sizeof(fl_host_commit) == 16);
FL_LAYOUT_ASSERT(offsetof(fl_device_commit, on_committed) == 8);
FL_LAYOUT_ASSERT(sizeof(fl_device_commit) == 16);

#endif /* LP64 */

/* The smallest struct sizes a v1.0 peer may present: a host or plugin refuses anything smaller. */
#define FL_V1_0_SIZEOF_HOST              ((uint32_t)(offsetof(fl_host, get_extension) + sizeof(void *)))
#define FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR ((uint32_t)(offsetof(fl_driver_descriptor, flags) + sizeof(uint64_t)))
#define FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR ((uint32_t)(offsetof(fl_plugin_descriptor, drivers) + sizeof(void *)))
#define FL_V1_0_SIZEOF_DEVICE            ((uint32_t)(offsetof(fl_device, get_extension) + sizeof(void *)))
#define FL_V1_0_SIZEOF_PLUGIN_ENTRY      ((uint32_t)(offsetof(fl_plugin_entry, get_extension) + sizeof(void *)))
#define FL_V1_0_SIZEOF_HOST_TRANSPORT    ((uint32_t)(offsetof(fl_host_transport, unit) + sizeof(void *)))
#define FL_V1_0_SIZEOF_DEVICE_TRANSPORT  ((uint32_t)(offsetof(fl_device_transport, on_state) + sizeof(void *)))
#define FL_V1_0_SIZEOF_HOST_TIMER        ((uint32_t)(offsetof(fl_host_timer, cancel) + sizeof(void *)))
#define FL_V1_0_SIZEOF_DEVICE_TIMER      ((uint32_t)(offsetof(fl_device_timer, on_timer) + sizeof(void *)))
#define FL_V1_0_SIZEOF_PLUGIN_IDENTIFY   ((uint32_t)(offsetof(fl_plugin_identify, identify) + sizeof(void *)))
#define FL_V1_0_SIZEOF_HOST_COMMIT       ((uint32_t)(offsetof(fl_host_commit, emitted) + sizeof(void *)))
#define FL_V1_0_SIZEOF_DEVICE_COMMIT     ((uint32_t)(offsetof(fl_device_commit, on_committed) + sizeof(void *)))

/* Fields added in 1.1: the size a struct must have for the reader to use them. */
#define FL_V1_1_SIZEOF_DRIVER_DESCRIPTOR ((uint32_t)(offsetof(fl_driver_descriptor, commands) + sizeof(void *)))
#define FL_V1_1_SIZEOF_COMMAND_DESCRIPTOR ((uint32_t)(offsetof(fl_command_descriptor, flags) + sizeof(uint64_t)))

/* Extensions added after v1.0: the size of their first revision, the smallest a peer may present. */
#define FL_CONDITIONS_1_SIZEOF_CONDITION ((uint32_t)(offsetof(fl_condition, raised_wall_ms) + sizeof(int64_t)))
#define FL_CONDITIONS_1_SIZEOF_HOST_CONDITIONS \
    ((uint32_t)(offsetof(fl_host_conditions, list) + sizeof(void *)))

#endif /* FIRELINK_LAYOUT_H */
