/* hello-c: the smallest complete firelink plugin in pure C.
 *
 * One driver, "hello", of a vendor device class. Each device counts timer ticks, emits a telemetry event on every
 * tick, raises an alarm every `alarm_every` ticks and restores it on the next tick.
 * Driver config (msgpack map): period_ms (integer, default 1000), alarm_every (integer, default 5; 0 = never).
 */
#include <firelink/firelink.h>
#include <firelink/payload.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum hello_state { HELLO_CREATED, HELLO_STARTED, HELLO_STOPPED };

typedef struct hello_device {
    fl_device abi;
    const fl_host *host;
    const fl_host_timer *timer;
    enum hello_state state;
    uint32_t period_ms;
    int64_t alarm_every;
    int64_t ticks;
    int alarm_due;    /* an alarm is to be raised (kept until the host takes it) */
    int alarm_active; /* raised, not yet restored */
    char alarm_id[32];
} hello_device;

static uint32_t g_agreed_version;
static int g_negotiated;
static int g_initialized;

static hello_device *hello_from(const fl_device *d) { return d ? (hello_device *)d->driver_data : NULL; }

static void hello_log(const fl_host *host, int32_t level, const char *message) {
    if (host && host->log) host->log(host, level, message);
}

/* Emits {"schema":1, "kind":kind, "code":code, "event_id"/"ends": ref, "values":[{"name":"ticks","value":n}]}.
 * Returns the host's answer: on FL_BUSY the caller keeps its state and tries again on the next tick. */
static fl_status hello_emit(hello_device *dev, const char *kind, const char *code, const char *ref_key, const char *ref) {
    uint8_t buf[256];
    fl_mp_writer w;
    fl_status st;
    fl_mp_writer_init(&w, buf, sizeof buf);
    fl_mp_map(&w, ref_key ? 5 : 4);
    fl_mp_kv_int(&w, "schema", 1);
    fl_mp_kv_str(&w, "kind", kind);
    fl_mp_kv_str(&w, "code", code);
    if (ref_key) fl_mp_kv_str(&w, ref_key, ref);
    fl_mp_str(&w, "values");
    fl_mp_array(&w, 1);
    fl_mp_map(&w, 2);
    fl_mp_kv_str(&w, "name", "ticks");
    fl_mp_kv_int(&w, "value", dev->ticks);
    if (!fl_mp_ok(&w)) {
        hello_log(dev->host, FL_LOG_ERROR, "event did not fit the buffer");
        return FL_ERROR;
    }
    st = dev->host->emit(dev->host, buf, w.len);
    if (st == FL_INVALID_ARGUMENT) hello_log(dev->host, FL_LOG_ERROR, "the host refused an event as malformed");
    return st;
}

static void hello_on_timer(const fl_device *d, uint64_t timer_id) {
    hello_device *dev = hello_from(d);
    (void)timer_id;
    if (!dev || dev->state != HELLO_STARTED) return;
    dev->ticks++;
    hello_emit(dev, "telemetry", "tick", NULL, NULL); /* telemetry is expendable: not retried */
    /* An alarm or restore changes state only once the host took it (FL_BUSY: retried on the next tick). */
    if (dev->alarm_active) {
        if (hello_emit(dev, "restore", "hello_alarm", "ends", dev->alarm_id) != FL_BUSY) dev->alarm_active = 0;
    } else {
        if (dev->alarm_every > 0 && dev->ticks % dev->alarm_every == 0) dev->alarm_due = 1;
        if (dev->alarm_due) {
            snprintf(dev->alarm_id, sizeof dev->alarm_id, "alarm-%lld", (long long)dev->ticks);
            if (hello_emit(dev, "alarm", "hello_alarm", "event_id", dev->alarm_id) != FL_BUSY) {
                dev->alarm_active = 1;
                dev->alarm_due = 0;
            }
        }
    }
}

static const fl_device_timer hello_timer_ext = {sizeof(fl_device_timer), hello_on_timer};

static fl_status hello_start(const fl_device *d) {
    hello_device *dev = hello_from(d);
    uint64_t id = FL_INVALID_TIMER_ID;
    if (!dev || dev->state == HELLO_STARTED) return FL_MISUSE;
    if (!dev->timer || dev->timer->start(dev->host, dev->period_ms, 0, &id) != FL_OK) {
        hello_log(dev->host, FL_LOG_ERROR, "the host gave no timer");
        return FL_ERROR;
    }
    dev->state = HELLO_STARTED;
    return FL_OK;
}

static fl_status hello_stop(const fl_device *d) {
    hello_device *dev = hello_from(d);
    if (!dev || dev->state != HELLO_STARTED) return FL_MISUSE;
    dev->state = HELLO_STOPPED; /* the host cancels our timer after stop */
    return FL_OK;
}

static void hello_destroy(const fl_device *d) {
    hello_device *dev = hello_from(d);
    free(dev);
}

static fl_status hello_command(const fl_device *d, const uint8_t *command, size_t size) {
    hello_device *dev = hello_from(d);
    if (!dev || dev->state != HELLO_STARTED || (!command && size > 0)) return FL_MISUSE;
    return FL_UNSUPPORTED; /* hello has no commands */
}

static const void *hello_get_extension(const fl_device *d, const char *id) {
    if (!d || !id) return NULL;
    if (strcmp(id, FL_EXT_TIMER) == 0) return &hello_timer_ext;
    return NULL;
}

/* The device's functions, the same for every instance: create_device copies them and points driver_data at
 * the instance. */
static const fl_device hello_device_functions = {.struct_size = sizeof(fl_device), .start = hello_start,
                                                 .stop = hello_stop, .destroy = hello_destroy, .command = hello_command,
                                                 .get_extension = hello_get_extension};

/* ---- plugin level ---- */

static const char *const hello_needs[] = {FL_EXT_TIMER, NULL};

/* Declares that it takes no command at all (ABI 1.1): a list holding only the terminator. NULL would declare none,
 * and the host would treat every command as actuating. A driver with commands lists one fl_command_descriptor each:
 *     static const fl_command_descriptor close_valve = {sizeof(fl_command_descriptor), "close_valve",
 *                                                       "Close the shutoff valve", FL_COMMAND_ACTUATES}; */
static const fl_command_descriptor *const hello_commands[] = {NULL};

static const fl_driver_descriptor hello_driver = {
    sizeof(fl_driver_descriptor),
    0, /* no wire: it only ticks */
    "hello",
    "Hello device (C)",
    "vendor:org.firelink.examples.hello",
    "Counts timer ticks; raises and restores an alarm every few ticks.",
    hello_needs,
    0,
    hello_commands,
};

static const fl_driver_descriptor *const hello_drivers[] = {&hello_driver};

static const fl_plugin_descriptor hello_plugin = {
    sizeof(fl_plugin_descriptor),
    1,
    "org.firelink.examples.hello-c",
    "Hello (C)",
    "firelink examples",
    "1.0.0",
    "Apache-2.0",
    NULL,
    "The smallest complete firelink plugin, in C99.",
    hello_drivers,
};

static fl_status hello_negotiate(uint32_t host_version, uint32_t *agreed) {
    if (!agreed) return FL_MISUSE;
    if (FL_VERSION_MAJOR(host_version) != FL_ABI_VERSION_MAJOR) return FL_INCOMPATIBLE;
    g_agreed_version = host_version < FL_ABI_VERSION ? host_version : FL_ABI_VERSION;
    *agreed = g_agreed_version;
    g_negotiated = 1;
    return FL_OK;
}

static fl_status hello_init(const fl_host *host, const char *path) {
    (void)host;
    (void)path;
    if (!g_negotiated || g_initialized) return FL_MISUSE;
    g_initialized = 1;
    return FL_OK;
}

static void hello_deinit(void) { g_initialized = 0; }

static const fl_plugin_descriptor *hello_get_descriptor(void) { return g_negotiated ? &hello_plugin : NULL; }

/* Reads an optional integer key; returns 0 and logs when present with the wrong type or out of range. */
static int hello_config_int(const fl_host *host, const uint8_t *cfg, size_t size, const char *key, int64_t min,
                            int64_t max, int64_t *value) {
    fl_mp_value v;
    char msg[160];
    if (!fl_mp_find(cfg, size, key, &v)) return 1; /* absent: keep the default */
    if (v.type != FL_MP_INT || v.i < min || v.i > max) {
        snprintf(msg, sizeof msg, "config key '%s': expected an integer from %lld to %lld", key, (long long)min,
                 (long long)max);
        hello_log(host, FL_LOG_ERROR, msg);
        return 0;
    }
    *value = v.i;
    return 1;
}

static fl_status hello_create_device(const char *driver_id, const fl_host *host, const uint8_t *cfg, size_t size,
                                     const fl_device **out) {
    hello_device *dev;
    int64_t period = 1000, alarm_every = 5;
    if (out) *out = NULL;
    if (!g_initialized || !driver_id || !host || !out || (!cfg && size)) return FL_MISUSE;
    if (strcmp(driver_id, "hello") != 0) {
        hello_log(host, FL_LOG_ERROR, "this plugin has one driver, \"hello\"");
        return FL_NOT_FOUND;
    }
    if (!fl_mp_is_map(cfg, size)) {
        hello_log(host, FL_LOG_ERROR, "config: expected one msgpack map");
        return FL_INVALID_ARGUMENT;
    }
    if (!hello_config_int(host, cfg, size, "period_ms", 1, 86400000, &period) ||
        !hello_config_int(host, cfg, size, "alarm_every", 0, 1000000, &alarm_every))
        return FL_INVALID_ARGUMENT;
    dev = (hello_device *)calloc(1, sizeof *dev);
    if (!dev) return FL_NO_MEMORY;
    dev->abi = hello_device_functions;
    dev->abi.driver_data = dev;
    dev->host = host;
    dev->timer = (const fl_host_timer *)host->get_extension(host, FL_EXT_TIMER);
    dev->state = HELLO_CREATED;
    dev->period_ms = (uint32_t)period;
    dev->alarm_every = alarm_every;
    *out = &dev->abi;
    return FL_OK;
}

static const void *hello_plugin_extension(const char *id) {
    (void)id;
    return NULL;
}

FL_EXPORT const fl_plugin_entry firelink_plugin_entry = {
    sizeof(fl_plugin_entry), FL_ABI_VERSION, hello_negotiate,     hello_init,
    hello_deinit,            hello_get_descriptor, hello_create_device, hello_plugin_extension,
};
