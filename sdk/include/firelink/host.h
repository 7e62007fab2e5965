/* firelink v1: the host as a plugin sees it.
 *
 * The host hands a plugin one fl_host for the plugin itself (to fl_plugin_entry.init) and one per device instance
 * (to fl_plugin_entry.create_device). Through it the plugin emits events, logs, and looks up host extensions
 * (ext/transport.h, ext/timer.h, ...).
 */
#ifndef FIRELINK_HOST_H
#define FIRELINK_HOST_H

#include "abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fl_host fl_host;

struct fl_host {
    /* sizeof(fl_host) as the host compiled it. Fields past the size you know do not exist for you; fields past
     * struct_size do not exist in this host. Read a field only when struct_size covers it. */
    uint32_t struct_size;

    /* The ABI version agreed by negotiation (see fl_plugin_entry.negotiate). */
    uint32_t abi_version;

    /* The host's own; the plugin never reads or writes through it. */
    void *host_data;

    /* The host product and its version, for logs, e.g. "firelink-host", "1.0.0". Never NULL; valid for as long as
     * this fl_host is. */
    const char *host_name;
    const char *host_version;

    /* The device id from the site configuration for a device's fl_host; NULL for the plugin's own fl_host.
     * Valid for as long as this fl_host is. */
    const char *device_id;

    /* Hands one event to the host. `event` is a msgpack map following the event schema (docs/events.md) and is
     * borrowed for this call: the host has copied it when emit returns.
     * Returns FL_OK when the host took the event into its pipeline; FL_INVALID_ARGUMENT when it refused the event as
     * malformed (the host logs why, counts it, and the plugin must not retry the same bytes); FL_BUSY when the host
     * applies backpressure (the plugin keeps the event and retries); FL_MISUSE on the plugin's own fl_host or for an
     * instance that is not started. Never blocks on disk or network.
     * [thread: any | state: started] */
    fl_status (*emit)(const fl_host *host, const uint8_t *event, size_t event_size);

    /* Logs one line at `level` (FL_LOG_*) under this plugin's and device's name. `message` is UTF-8, borrowed.
     * Never blocks on disk or network; the host may rate-limit.
     * [thread: any | state: any] */
    void (*log)(const fl_host *host, int32_t level, const char *message);

    /* Returns the host's extension struct with this exact id ("firelink.timer/1"), or NULL when the host does not
     * support it. The returned pointer is valid for as long as this fl_host is; it may be cached.
     * [thread: any | state: any] */
    const void *(*get_extension)(const fl_host *host, const char *extension_id);
};

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_HOST_H */
