/* firelink extension "firelink.identify/1": which configured device is on a connection that came in.
 *
 * Devices that connect in to a host listener (a GB/T 26875.3 user information transmission device calling the
 * monitoring centre) are often not told apart by their IP address: they sit behind NAT or change address. The site
 * file then binds each such device by the identity its own frames carry (wire = { listener = "centre",
 * identity = "0A0B0C0D0E0F" }), and the host asks the driver to read that identity from a new connection's first
 * bytes. Once identified, those bytes are delivered to that device's on_data, first and in order.
 *
 * Plugin side: fl_plugin_entry.get_extension(FL_EXT_IDENTIFY) returns const fl_plugin_identify *.
 */
#ifndef FIRELINK_EXT_IDENTIFY_H
#define FIRELINK_EXT_IDENTIFY_H

#include <firelink/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_EXT_IDENTIFY "firelink.identify/1"

typedef struct fl_plugin_identify {
    uint32_t struct_size;

    /* Reads the identity from the first `size` bytes a connection sent, for driver `driver_id`. On FL_OK it has
     * written *identity_len bytes of UTF-8 (not NUL-terminated, at most identity_cap) to `identity`. FL_BUSY: more
     * bytes are needed; the host calls again with the longer prefix. FL_INVALID_ARGUMENT: the bytes are not this
     * driver's protocol; FL_NOT_FOUND: no such driver. It must be a pure function of its arguments (no state, no
     * host calls, no blocking): the host may call it for connections no device claims. Every pointer is borrowed.
     * [thread: any | state: initialized] */
    fl_status (*identify)(const char *driver_id, const uint8_t *data, size_t size, char *identity,
                          size_t identity_cap, size_t *identity_len);
} fl_plugin_identify;

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_EXT_IDENTIFY_H */
