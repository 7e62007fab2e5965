/* The ABI layout as the C compiler sees it, for layout_test.cpp to compare with the C++ compiler's view: a plugin
 * written in C and a host written in C++ must agree on every offset. */
#include <firelink/firelink.h>

#define FL_PROBE_FIELD(type, field) offsetof(type, field), sizeof(((type *)0)->field)

/* Pairs of (offset, size), then sizeof, per struct, in the order layout_test.cpp expects. */
extern const size_t fl_probe_c_layout[];
extern const size_t fl_probe_c_layout_count;

const size_t fl_probe_c_layout[] = {
    FL_PROBE_FIELD(fl_host, struct_size), FL_PROBE_FIELD(fl_host, abi_version), FL_PROBE_FIELD(fl_host, host_data),
    FL_PROBE_FIELD(fl_host, host_name), FL_PROBE_FIELD(fl_host, host_version), FL_PROBE_FIELD(fl_host, device_id),
    FL_PROBE_FIELD(fl_host, emit), FL_PROBE_FIELD(fl_host, log), FL_PROBE_FIELD(fl_host, get_extension),
    sizeof(fl_host),

    FL_PROBE_FIELD(fl_driver_descriptor, struct_size), FL_PROBE_FIELD(fl_driver_descriptor, wires),
    FL_PROBE_FIELD(fl_driver_descriptor, id), FL_PROBE_FIELD(fl_driver_descriptor, name),
    FL_PROBE_FIELD(fl_driver_descriptor, device_class), FL_PROBE_FIELD(fl_driver_descriptor, description),
    FL_PROBE_FIELD(fl_driver_descriptor, required_extensions), FL_PROBE_FIELD(fl_driver_descriptor, flags),
    FL_PROBE_FIELD(fl_driver_descriptor, commands),
    sizeof(fl_driver_descriptor),

    FL_PROBE_FIELD(fl_command_descriptor, struct_size), FL_PROBE_FIELD(fl_command_descriptor, name),
    FL_PROBE_FIELD(fl_command_descriptor, description), FL_PROBE_FIELD(fl_command_descriptor, flags),
    sizeof(fl_command_descriptor),

    FL_PROBE_FIELD(fl_plugin_descriptor, struct_size), FL_PROBE_FIELD(fl_plugin_descriptor, driver_count),
    FL_PROBE_FIELD(fl_plugin_descriptor, id), FL_PROBE_FIELD(fl_plugin_descriptor, name),
    FL_PROBE_FIELD(fl_plugin_descriptor, vendor), FL_PROBE_FIELD(fl_plugin_descriptor, version),
    FL_PROBE_FIELD(fl_plugin_descriptor, license), FL_PROBE_FIELD(fl_plugin_descriptor, url),
    FL_PROBE_FIELD(fl_plugin_descriptor, description), FL_PROBE_FIELD(fl_plugin_descriptor, drivers),
    sizeof(fl_plugin_descriptor),

    FL_PROBE_FIELD(fl_device, struct_size), FL_PROBE_FIELD(fl_device, driver_data), FL_PROBE_FIELD(fl_device, start),
    FL_PROBE_FIELD(fl_device, stop), FL_PROBE_FIELD(fl_device, destroy), FL_PROBE_FIELD(fl_device, command),
    FL_PROBE_FIELD(fl_device, get_extension),
    sizeof(fl_device),

    FL_PROBE_FIELD(fl_plugin_entry, struct_size), FL_PROBE_FIELD(fl_plugin_entry, abi_version),
    FL_PROBE_FIELD(fl_plugin_entry, negotiate), FL_PROBE_FIELD(fl_plugin_entry, init),
    FL_PROBE_FIELD(fl_plugin_entry, deinit), FL_PROBE_FIELD(fl_plugin_entry, get_descriptor),
    FL_PROBE_FIELD(fl_plugin_entry, create_device), FL_PROBE_FIELD(fl_plugin_entry, get_extension),
    sizeof(fl_plugin_entry),

    FL_PROBE_FIELD(fl_host_transport, struct_size), FL_PROBE_FIELD(fl_host_transport, kind),
    FL_PROBE_FIELD(fl_host_transport, open), FL_PROBE_FIELD(fl_host_transport, write),
    FL_PROBE_FIELD(fl_host_transport, request), FL_PROBE_FIELD(fl_host_transport, end_request),
    FL_PROBE_FIELD(fl_host_transport, close), FL_PROBE_FIELD(fl_host_transport, unit),
    sizeof(fl_host_transport),

    FL_PROBE_FIELD(fl_device_transport, struct_size), FL_PROBE_FIELD(fl_device_transport, on_data),
    FL_PROBE_FIELD(fl_device_transport, on_state),
    sizeof(fl_device_transport),

    FL_PROBE_FIELD(fl_host_timer, struct_size), FL_PROBE_FIELD(fl_host_timer, start),
    FL_PROBE_FIELD(fl_host_timer, cancel),
    sizeof(fl_host_timer),

    FL_PROBE_FIELD(fl_device_timer, struct_size), FL_PROBE_FIELD(fl_device_timer, on_timer),
    sizeof(fl_device_timer),

    FL_PROBE_FIELD(fl_plugin_identify, struct_size), FL_PROBE_FIELD(fl_plugin_identify, identify),
    sizeof(fl_plugin_identify),

    FL_PROBE_FIELD(fl_condition, struct_size), FL_PROBE_FIELD(fl_condition, event_id),
    FL_PROBE_FIELD(fl_condition, kind), FL_PROBE_FIELD(fl_condition, code), FL_PROBE_FIELD(fl_condition, event),
    FL_PROBE_FIELD(fl_condition, event_size), FL_PROBE_FIELD(fl_condition, raised_wall_ms),
    sizeof(fl_condition),

    FL_PROBE_FIELD(fl_host_conditions, struct_size), FL_PROBE_FIELD(fl_host_conditions, list),
    sizeof(fl_host_conditions),

    /* and the v1.0 minimum sizes, as C computes them */
    FL_V1_0_SIZEOF_HOST, FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR, FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR, FL_V1_0_SIZEOF_DEVICE,
    FL_V1_0_SIZEOF_PLUGIN_ENTRY, FL_V1_0_SIZEOF_HOST_TRANSPORT, FL_V1_0_SIZEOF_DEVICE_TRANSPORT,
    FL_V1_0_SIZEOF_HOST_TIMER, FL_V1_0_SIZEOF_DEVICE_TIMER,
    FL_CONDITIONS_1_SIZEOF_CONDITION, FL_CONDITIONS_1_SIZEOF_HOST_CONDITIONS,
};

const size_t fl_probe_c_layout_count = sizeof fl_probe_c_layout / sizeof fl_probe_c_layout[0];
