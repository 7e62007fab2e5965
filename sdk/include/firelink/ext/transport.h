/* firelink extension "firelink.transport/1": the device's wire, owned by the host.
 *
 * The host owns ports, the shared RS-485 bus, reconnects and TCP listeners; a driver is a protocol state machine
 * that writes bytes and is handed the bytes that arrive. The site configuration says which wire a device is on; the
 * driver never names a port or an address.
 * Rationale: with host-owned wires the conformance suite can replay, garble, cut and delay a device's bytes with no
 * hardware, and the host can sandbox the driver.
 *
 * Host side: fl_host.get_extension(host, FL_EXT_TRANSPORT) returns const fl_host_transport *.
 * Device side: fl_device.get_extension(device, FL_EXT_TRANSPORT) returns const fl_device_transport *; a driver that
 * declares a wire (fl_driver_descriptor.wires) must implement it.
 */
#ifndef FIRELINK_EXT_TRANSPORT_H
#define FIRELINK_EXT_TRANSPORT_H

#include <firelink/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_EXT_TRANSPORT "firelink.transport/1"

/* What fl_host_transport.kind returns: which wire the site configured for this device. */
#define FL_TRANSPORT_SERIAL       1
#define FL_TRANSPORT_RS485_BUS    2
#define FL_TRANSPORT_TCP_CLIENT   3
#define FL_TRANSPORT_TCP_ACCEPTED 4
#define FL_TRANSPORT_UDP          5

/* Link states reported to fl_device_transport.on_state. */
#define FL_LINK_CLOSED        0  /* closed by the driver (close) or never opened */
#define FL_LINK_OPENING       1  /* connecting, or waiting for the device to connect in */
#define FL_LINK_OPEN          2  /* bytes can flow */
#define FL_LINK_LOST          3  /* the link dropped; the host is reconnecting with backoff */
#define FL_LINK_FAILED        4  /* the link cannot be opened (bad port, refused); the host retries with backoff */
#define FL_LINK_REPLY_TIMEOUT 5  /* a request's reply did not complete in time; the bus turn has ended */

typedef struct fl_host_transport {
    uint32_t struct_size;

    /* Returns the FL_TRANSPORT_* kind of the device's configured wire, so that a driver can pick its framing (for
     * example Modbus RTU on serial, MBAP on TCP). [thread: device | state: any] */
    int32_t (*kind)(const fl_host *host);

    /* Opens the wire. Returns FL_OK when opening has begun; the outcome arrives as on_state(FL_LINK_OPEN) or
     * on_state(FL_LINK_FAILED), never from inside this call. [thread: device | state: started] */
    fl_status (*open)(const fl_host *host);

    /* Queues bytes for the wire, copied before return. FL_CLOSED when the link is not open, FL_BUSY when the host's
     * send buffer for the device is full. On a shared bus use request instead. [thread: device | state: started] */
    fl_status (*write)(const fl_host *host, const uint8_t *data, size_t size);

    /* Half-duplex request on a shared bus (also valid on any other wire): the host queues the request until the bus
     * is free, sends it, and gives the device the bus until the driver calls end_request or reply_timeout_ms passes
     * (then on_state(FL_LINK_REPLY_TIMEOUT)). Bytes that arrive during the turn go to on_data. One request per device
     * in flight: a second returns FL_BUSY. [thread: device | state: started] */
    fl_status (*request)(const fl_host *host, const uint8_t *data, size_t size, uint32_t reply_timeout_ms);

    /* Ends the device's bus turn once its reply is complete, so the next device may talk.
     * [thread: device | state: started] */
    fl_status (*end_request)(const fl_host *host);

    /* Closes the wire; on_state(FL_LINK_CLOSED) follows. [thread: device | state: started] */
    fl_status (*close)(const fl_host *host);

    /* Returns the device's unit address on its wire as the site configured it (the Modbus slave id on a serial
     * bus, the unit id behind a Modbus TCP gateway), or -1 when the wire has none. The driver puts it in its frames;
     * the host does not interpret it. [thread: device | state: any] */
    int32_t (*unit)(const fl_host *host);
} fl_host_transport;

typedef struct fl_device_transport {
    uint32_t struct_size;

    /* Bytes that arrived from the device, in order, in chunks of any size (as small as one byte): the driver keeps
     * its own framing state. `data` is borrowed for the call. Must not block. [thread: device | state: started] */
    void (*on_data)(const fl_device *device, const uint8_t *data, size_t size);

    /* The link changed to `state` (FL_LINK_*); `reason` is FL_OK or the status that caused it.
     * [thread: device | state: started] */
    void (*on_state)(const fl_device *device, int32_t state, fl_status reason);
} fl_device_transport;

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_EXT_TRANSPORT_H */
