/* firelink extension "firelink.conditions/1": the device's open conditions, as the host keeps them.
 *
 * Host side: fl_host.get_extension(host, FL_EXT_CONDITIONS) on a device's fl_host returns const fl_host_conditions *.
 */
#ifndef FIRELINK_EXT_CONDITIONS_H
#define FIRELINK_EXT_CONDITIONS_H

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FL_EXT_CONDITIONS "firelink.conditions/1"

typedef struct fl_condition {
    uint32_t struct_size;
    const char *event_id;      /* the raising event's event_id */
    const char *kind;          /* "alarm", "pre_alarm" or "fault" */
    const char *code;
    const uint8_t *event;      /* the raising event as emitted (msgpack map) */
    size_t event_size;
    int64_t raised_wall_ms;    /* when the host accepted it */
} fl_condition;

typedef struct fl_host_conditions {
    uint32_t struct_size;
    /* The device's open conditions as the host holds them: raised by an earlier instance of this device (before a
     * driver or host restart) or by this one, and not yet restored. Calls visit once per condition, oldest first;
     * every pointer is valid only during that visit call. Returns the number visited.
     * [thread: device | state: created or started] */
    size_t (*list)(const fl_host *host, void (*visit)(void *context, const fl_condition *condition), void *context);
} fl_host_conditions;

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_EXT_CONDITIONS_H */
