/* firelink extension "firelink.conditions/1": the device's open conditions, as the host keeps them.
 *
 * Host side: fl_host.get_extension(host, FL_EXT_CONDITIONS) on a device's fl_host returns const fl_host_conditions *.
 * There is no device half: a driver only reads.
 *
 * An open condition is an alarm, pre_alarm or fault the driver emitted with an `event_id` and the host accepted,
 * not yet ended by a restore whose `ends` names that id (docs/events.md, "Host-kept conditions"). The host keeps them
 * per device id across driver restarts, runner restarts and (with a durable queue) host restarts, so that a driver
 * of a push-only device, which cannot ask the device what is active, can still end an alarm raised by an earlier
 * instance: it finds the id here. Events the host makes itself (offline, driver_crashed, ...) are not listed.
 * Rationale: the event_id a driver chose lives only in that driver's memory; when the instance is gone the id is
 * gone with it, and the platform would keep the alarm open forever.
 */
#ifndef FIRELINK_EXT_CONDITIONS_H
#define FIRELINK_EXT_CONDITIONS_H

#include <firelink/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_EXT_CONDITIONS "firelink.conditions/1"

/* One open condition, as a visit call sees it. Every pointer is the host's and valid only during that call: the
 * driver copies what it keeps. */
typedef struct fl_condition {
    uint32_t struct_size;
    const char *event_id;      /* the raising event's event_id; never NULL */
    const char *kind;          /* "alarm", "pre_alarm" or "fault" */
    const char *code;          /* the raising event's code */
    const uint8_t *event;      /* the raising event as emitted (msgpack map), event_size bytes */
    size_t event_size;
    int64_t raised_wall_ms;    /* when the host accepted it, by the host's wall clock, ms since the Unix epoch */
} fl_condition;

typedef struct fl_host_conditions {
    uint32_t struct_size;

    /* The device's open conditions as the host holds them: raised by an earlier instance of this device (before a
     * driver or host restart) or by this one, and not yet restored. Calls visit once per condition, oldest first;
     * every pointer is valid only during that visit call. Returns the number visited; 0 (and no visit) when visit
     * is NULL or the instance is stopped.
     * The list is a snapshot taken when the call begins, so visit may call other host functions (emit, log) and
     * may run from inside create_device, which is on the host's main thread: the call takes no lock of the
     * device's strand and never waits for it.
     * [thread: any | state: created, started] */
    size_t (*list)(const fl_host *host, void (*visit)(void *context, const fl_condition *condition), void *context);
} fl_host_conditions;

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_EXT_CONDITIONS_H */
