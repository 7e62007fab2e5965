/* firelink extension "firelink.timer/1": timers run by the host on the device's strand.
 *
 * Host side: fl_host.get_extension(host, FL_EXT_TIMER) returns const fl_host_timer *.
 * Device side: fl_device.get_extension(device, FL_EXT_TIMER) returns const fl_device_timer *; a driver that starts
 * timers must implement it.
 * Rationale: host timers keep the driver free of threads, so its calls stay serialised and a test can drive them.
 */
#ifndef FIRELINK_EXT_TIMER_H
#define FIRELINK_EXT_TIMER_H

#include <firelink/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_EXT_TIMER "firelink.timer/1"

/* Never returned as a timer id. */
#define FL_INVALID_TIMER_ID ((uint64_t)0)

/* Flags for fl_host_timer.start. */
#define FL_TIMER_ONESHOT (1u << 0)  /* fire once, then the id is void; without it, fire every period */

typedef struct fl_host_timer {
    uint32_t struct_size;

    /* Starts a timer that calls on_timer after period_ms (at least 1), and then every period_ms unless
     * FL_TIMER_ONESHOT. A periodic timer does not catch up: ticks missed while the device was busy are skipped.
     * On FL_OK *out_timer_id is a new id, unique for the instance. All of an instance's timers end when it stops.
     * [thread: device | state: started] */
    fl_status (*start)(const fl_host *host, uint32_t period_ms, uint32_t flags, uint64_t *out_timer_id);

    /* Cancels a timer; no on_timer call for it follows. FL_NOT_FOUND for an unknown or spent id.
     * [thread: device | state: started] */
    fl_status (*cancel)(const fl_host *host, uint64_t timer_id);
} fl_host_timer;

typedef struct fl_device_timer {
    uint32_t struct_size;

    /* The timer fired. Must return quickly (the host's watchdog reports a callback that blocks).
     * [thread: device | state: started] */
    void (*on_timer)(const fl_device *device, uint64_t timer_id);
} fl_device_timer;

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_EXT_TIMER_H */
