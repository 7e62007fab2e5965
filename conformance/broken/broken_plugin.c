/* One driver source built in variants (BROKEN_* definitions), each breaking one rule of docs/abi.md on purpose, so
 * that tests/conformance can prove every check of firelink-conform can fail. Built without a define, it is a small
 * correct plugin that passes the suite.
 *
 * The driver, "probe", is a pyrolysis detector on a serial wire speaking a toy protocol: frames STX <body> ETX.
 * It writes a PING frame when the link opens and on every timer tick; a PING frame that comes back (a loopback, as
 * the suite's chunked-input check provides) is reported as telemetry "echo"; ALRM raises an alarm, NORM restores it.
 * Command "reset" is accepted; any other name is FL_UNSUPPORTED. A link that drops raises a communication_fault,
 * restored when it opens again. Events wait in a small queue while the host answers FL_BUSY, and are emitted again
 * from the next callback (FL-PLUGIN-28). Built with PROBE_ON_BUS it is a vendor-class device that also takes an
 * RS-485 bus, where it writes its PING as a request() turn and ends the turn when the echo's ETX arrives. */
#define _POSIX_C_SOURCE 200809L
#include <firelink/firelink.h>
#include <firelink/payload.h>

#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef BROKEN_PLUGIN_ID
#define BROKEN_PLUGIN_ID "org.firelink.conformance.good"
#endif

#ifdef BROKEN_WRONG_MAJOR
#define BROKEN_ABI_VERSION FL_MAKE_VERSION(2, 0, 0)
#else
#define BROKEN_ABI_VERSION FL_ABI_VERSION
#endif

#ifdef BROKEN_EXTRA_EXPORTS
/* Exported besides the entry: this variant is built without the SDK's version script. */
FL_EXPORT int broken_helper_everyone_can_see(void) { return 7; }
#endif

/* The probe's wires. On a shared bus it speaks in request() turns; the variant that does declares a vendor class,
 * so that no class scenario (a Modbus simulator on the bus) takes it for a pyrolysis detector. */
#if defined(PROBE_ON_BUS)
#define PROBE_WIRES (FL_WIRE_SERIAL | FL_WIRE_RS485_BUS)
#define PROBE_CLASS "vendor:org.firelink.conformance.bus-probe"
#elif defined(BROKEN_IDENTIFY_ANYTHING)
#define PROBE_WIRES (FL_WIRE_SERIAL | FL_WIRE_TCP_ACCEPTED)
#define PROBE_CLASS FL_CLASS_PYROLYSIS_DETECTOR
#else
#define PROBE_WIRES FL_WIRE_SERIAL
#define PROBE_CLASS FL_CLASS_PYROLYSIS_DETECTOR
#endif

#define STX 0x02
#define ETX 0x03

enum probe_state { PROBE_CREATED, PROBE_STARTED, PROBE_STOPPED };

typedef struct probe_device {
    fl_device abi;
    const fl_host *host;
    const fl_host_transport *wire;
    const fl_host_timer *timer;
    enum probe_state state;
    uint8_t frame[32];
    size_t frame_len;
    int in_frame;
    int alarm_active;
    int fault_active;
    int turn_open;
    unsigned fault_serial;
    char fault_id[16];
    struct probe_event {
        char kind[16], code[32], ref_key[12], ref[16];
    } queue[8];
    size_t queued;
#ifdef BROKEN_KEEPS_CONFIG
    const uint8_t *config; /* the host's bytes, kept past create_device */
    size_t config_size;
#endif
#ifdef BROKEN_LEAK
    int leaked_fd;
    char *leaked_buf;
#endif
#ifdef BROKEN_EMITS_AFTER_STOP
    pthread_t thread;
    volatile int thread_run;
#endif
#ifdef BROKEN_OWN_SOCKET
    int own_socket; /* a socket of its own, beside the host's transport */
#endif
} probe_device;

static int g_negotiated;
static int g_initialized;

static probe_device *probe_from(const fl_device *d) { return d ? (probe_device *)d->driver_data : NULL; }

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static fl_status probe_emit(probe_device *dev, const char *kind, const char *code, const char *ref_key,
                            const char *ref) {
    uint8_t buf[192];
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf, sizeof buf);
    fl_mp_map(&w, ref_key ? 4 : 3);
    fl_mp_kv_int(&w, "schema", 1);
    fl_mp_kv_str(&w, "kind", kind);
    fl_mp_kv_str(&w, "code", code);
    if (ref_key) fl_mp_kv_str(&w, ref_key, ref);
#ifdef BROKEN_UNKNOWN_STATUS
    {
        const fl_status st = dev->host->emit(dev->host, buf, w.len);
        if (st < FL_NOT_FOUND) abort(); /* "cannot happen": a status this version does not know */
        return st;
    }
#else
    return dev->host->emit(dev->host, buf, w.len);
#endif
}

/* Emits the queued events in order; one answered FL_BUSY stays, with the ones after it, for the next callback. */
static void probe_flush(probe_device *dev) {
    while (dev->queued) {
        const struct probe_event *e = &dev->queue[0];
        const fl_status st = probe_emit(dev, e->kind, e->code, e->ref_key[0] ? e->ref_key : NULL, e->ref);
#ifndef BROKEN_DROPS_BUSY
        if (st == FL_BUSY) return;
#else
        (void)st; /* whatever the host answered, the event is gone */
#endif
        memmove(&dev->queue[0], &dev->queue[1], (dev->queued - 1) * sizeof dev->queue[0]);
        dev->queued--;
    }
}

static void probe_post(probe_device *dev, const char *kind, const char *code, const char *ref_key, const char *ref) {
    struct probe_event *e;
    if (dev->queued == sizeof dev->queue / sizeof dev->queue[0]) return; /* full: the host is gone for long */
    e = &dev->queue[dev->queued++];
    memset(e, 0, sizeof *e);
    strncpy(e->kind, kind, sizeof e->kind - 1);
    strncpy(e->code, code, sizeof e->code - 1);
    if (ref_key) strncpy(e->ref_key, ref_key, sizeof e->ref_key - 1);
    if (ref) strncpy(e->ref, ref, sizeof e->ref - 1);
    probe_flush(dev);
}

static void probe_send_ping(probe_device *dev) {
    static const uint8_t ping[] = {STX, 'P', 'I', 'N', 'G', ETX};
    if (!dev->wire) return;
    if (dev->wire->kind(dev->host) != FL_TRANSPORT_RS485_BUS) {
        dev->wire->write(dev->host, ping, sizeof ping);
    } else if (!dev->turn_open && dev->wire->request(dev->host, ping, sizeof ping, 0) == FL_OK) {
        dev->turn_open = 1; /* on a shared bus: one request a turn, ended once its reply is in */
    }
}

static void probe_frame(probe_device *dev) {
    if (dev->frame_len == 4 && memcmp(dev->frame, "PING", 4) == 0) {
        probe_emit(dev, "telemetry", "echo", NULL, NULL);
    } else if (dev->frame_len == 4 && memcmp(dev->frame, "ALRM", 4) == 0 && !dev->alarm_active) {
        probe_post(dev, "alarm", "pyrolysis_alarm", "event_id", "a1");
        dev->alarm_active = 1;
    } else if (dev->frame_len == 4 && memcmp(dev->frame, "NORM", 4) == 0 && dev->alarm_active) {
        probe_post(dev, "restore", "pyrolysis_alarm", "ends", "a1");
        dev->alarm_active = 0;
    }
}

static void probe_on_data(const fl_device *d, const uint8_t *data, size_t size) {
    probe_device *dev = probe_from(d);
    size_t i;
    if (!dev || dev->state != PROBE_STARTED || (!data && size)) return;
#ifdef BROKEN_HANG_DATA
    for (;;) sleep_ms(1000); /* waits for bytes that never come: the host's strand is stuck */
#endif
#ifdef BROKEN_SPLIT_DECODE
    dev->in_frame = 0; /* forgets a frame begun in an earlier chunk: split frames are lost */
    dev->frame_len = 0;
#endif
    for (i = 0; i < size; ++i) {
        const uint8_t b = data[i];
        if (b == STX) {
            dev->in_frame = 1;
            dev->frame_len = 0;
        } else if (!dev->in_frame) {
            continue; /* noise between frames */
        } else if (b == ETX) {
            dev->in_frame = 0;
#ifndef BROKEN_HOLDS_BUS
            if (dev->turn_open) {
                dev->turn_open = 0;
                dev->wire->end_request(dev->host);
            }
#endif
            probe_frame(dev);
        } else if (dev->frame_len < sizeof dev->frame) {
            dev->frame[dev->frame_len++] = b;
        } else {
            dev->in_frame = 0; /* too long: not a frame */
        }
    }
}

static void probe_on_state(const fl_device *d, int32_t state, fl_status reason) {
    probe_device *dev = probe_from(d);
    (void)reason;
    if (!dev || dev->state != PROBE_STARTED) return;
    dev->in_frame = 0;
    dev->turn_open = 0; /* a reply timeout, a drop or a reopen: the host ended the turn */
    if ((state == FL_LINK_LOST || state == FL_LINK_FAILED) && !dev->fault_active) {
        snprintf(dev->fault_id, sizeof dev->fault_id, "c%u", ++dev->fault_serial);
        probe_post(dev, "fault", "communication_fault", "event_id", dev->fault_id);
        dev->fault_active = 1;
    } else if (state == FL_LINK_OPEN && dev->fault_active) {
        probe_post(dev, "restore", "communication_fault", "ends", dev->fault_id);
        dev->fault_active = 0;
    }
    if (state == FL_LINK_OPEN) probe_send_ping(dev);
}

static void probe_on_timer(const fl_device *d, uint64_t id) {
    probe_device *dev = probe_from(d);
    (void)id;
    if (!dev || dev->state != PROBE_STARTED) return;
    probe_flush(dev);
    probe_send_ping(dev);
    probe_emit(dev, "telemetry", "poll", NULL, NULL);
#ifdef BROKEN_BAD_EVENTS
    probe_emit(dev, "alarm", "fire_alarm", "event_id", "f1"); /* a fire panel's code from a pyrolysis detector */
    {
        static const uint8_t not_msgpack[] = {0xc1, 0xc1, 0xc1};
        dev->host->emit(dev->host, not_msgpack, sizeof not_msgpack);
    }
#endif
#ifdef BROKEN_RESTORE_NO_ENDS
    probe_emit(dev, "alarm", "pyrolysis_alarm", "event_id", "a9");
    probe_emit(dev, "restore", "pyrolysis_alarm", NULL, NULL); /* which alarm does it end? */
#endif
#ifdef BROKEN_RESTORE_UNRAISED
    probe_emit(dev, "restore", "pyrolysis_alarm", "ends", "never-raised");
#endif
}

static const fl_device_transport probe_transport_ext = {sizeof(fl_device_transport), probe_on_data, probe_on_state};
static const fl_device_timer probe_timer_ext = {sizeof(fl_device_timer), probe_on_timer};

#ifdef BROKEN_EMITS_AFTER_STOP
/* A reporting thread that runs for the life of the instance instead of while it is started. */
static void *probe_thread(void *arg) {
    probe_device *dev = (probe_device *)arg;
    while (dev->thread_run) {
        probe_emit(dev, "telemetry", "heartbeat", NULL, NULL);
        sleep_ms(10);
    }
    return NULL;
}
#endif

#ifdef BROKEN_IGNORES_MISUSE
#define PROBE_REQUIRE(cond) ((void)0)
#else
#define PROBE_REQUIRE(cond) \
    do {                    \
        if (!(cond)) return FL_MISUSE; \
    } while (0)
#endif

static fl_status probe_start(const fl_device *d) {
    probe_device *dev = probe_from(d);
    uint64_t timer_id;
    if (!dev) return FL_MISUSE;
    PROBE_REQUIRE(dev->state != PROBE_STARTED);
#ifdef BROKEN_KEEPS_CONFIG
    if (dev->config_size) {
        volatile uint8_t first = dev->config[0]; /* the host's buffer, long since returned */
        (void)first;
    }
#endif
    if (!dev->wire || !dev->timer) {
        dev->host->log(dev->host, FL_LOG_ERROR, "the host gave no transport or no timer");
        return FL_ERROR;
    }
    if (dev->wire->open(dev->host) != FL_OK) return FL_ERROR;
    if (dev->timer->start(dev->host, 1000, 0, &timer_id) != FL_OK) return FL_ERROR;
    dev->state = PROBE_STARTED;
    dev->in_frame = 0;
    dev->frame_len = 0;
#ifdef BROKEN_OWN_SOCKET
    dev->own_socket = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); /* talks past the host, undeclared */
#endif
#ifdef BROKEN_EMITS_AFTER_STOP
    if (!dev->thread_run) {
        dev->thread_run = 1;
        pthread_create(&dev->thread, NULL, probe_thread, dev);
    }
#endif
    return FL_OK;
}

static fl_status probe_stop(const fl_device *d) {
    probe_device *dev = probe_from(d);
    if (!dev) return FL_MISUSE;
    PROBE_REQUIRE(dev->state == PROBE_STARTED);
    dev->state = PROBE_STOPPED;
#ifdef BROKEN_OWN_SOCKET
    if (dev->own_socket >= 0) close(dev->own_socket); /* closed again: no leak, only the undeclared I/O */
    dev->own_socket = -1;
#endif
    return FL_OK;
}

static void probe_destroy(const fl_device *d) {
    probe_device *dev = probe_from(d);
    if (!dev) return;
#ifdef BROKEN_EMITS_AFTER_STOP
    if (dev->thread_run) {
        dev->thread_run = 0;
        pthread_join(dev->thread, NULL);
    }
#endif
    free(dev);
}

static fl_status probe_command(const fl_device *d, const uint8_t *cmd, size_t size) {
    probe_device *dev = probe_from(d);
    fl_mp_value name, id;
    char idbuf[65];
    uint8_t buf[192];
    fl_mp_writer w;
    if (!dev || (!cmd && size)) return FL_MISUSE;
    PROBE_REQUIRE(dev->state == PROBE_STARTED);
#ifdef BROKEN_BLOCKS_HOST
    sleep_ms(250); /* waits for the device's read-back inside the call */
#endif
    if (!fl_mp_is_map(cmd, size) || !fl_mp_find(cmd, size, "name", &name) || name.type != FL_MP_STR ||
        !fl_mp_find(cmd, size, "id", &id) || id.type != FL_MP_STR || id.str_len == 0 || id.str_len > 64)
        return FL_INVALID_ARGUMENT;
#ifdef BROKEN_PREFIX_COMMANDS
    /* Matches by prefix: "reset_undeclared" resets too, though the driver declared only "reset". */
    if (!(name.str_len >= 5 && memcmp(name.str, "reset", 5) == 0)) return FL_UNSUPPORTED;
#else
    if (!(name.str_len == 5 && memcmp(name.str, "reset", 5) == 0)) return FL_UNSUPPORTED;
#endif
    memcpy(idbuf, id.str, id.str_len);
    idbuf[id.str_len] = 0;
    dev->alarm_active = 0;
    fl_mp_writer_init(&w, buf, sizeof buf);
    fl_mp_map(&w, 5);
    fl_mp_kv_int(&w, "schema", 1);
    fl_mp_kv_str(&w, "kind", "command_result");
    fl_mp_kv_str(&w, "code", "command_succeeded");
    fl_mp_kv_str(&w, "command_id", idbuf);
    fl_mp_kv_bool(&w, "ok", 1);
    dev->host->emit(dev->host, buf, w.len);
    return FL_OK;
}

static const void *probe_get_extension(const fl_device *d, const char *id) {
    if (!d || !id) return NULL;
    if (strcmp(id, FL_EXT_TRANSPORT) == 0) return &probe_transport_ext;
    if (strcmp(id, FL_EXT_TIMER) == 0) return &probe_timer_ext;
    return NULL;
}

/* The device's functions, the same for every instance: create_device copies them and points driver_data at
 * the instance. */
static const fl_device probe_device_functions = {.struct_size = sizeof(fl_device), .start = probe_start,
                                                 .stop = probe_stop, .destroy = probe_destroy, .command = probe_command,
                                                 .get_extension = probe_get_extension};

/* ---- plugin level ---- */

#ifdef BROKEN_UNLISTED_EXTENSION
static const char *const probe_needs[] = {FL_EXT_TRANSPORT, NULL}; /* uses the timer all the same */
#else
static const char *const probe_needs[] = {FL_EXT_TRANSPORT, FL_EXT_TIMER, NULL};
#endif

/* Its one command, reset, clears the latched alarm: it actuates (the class pyrolysis_detector says so). */
#if defined(BROKEN_DECLARES_NO_COMMANDS)
#define PROBE_COMMANDS NULL
#elif defined(BROKEN_RESET_NOT_ACTUATING)
static const fl_command_descriptor probe_reset = {sizeof(fl_command_descriptor), "reset", "Clear the latch", 0};
#elif defined(BROKEN_BAD_COMMAND_NAME)
static const fl_command_descriptor probe_reset = {sizeof(fl_command_descriptor), "Reset!", "Clear the latch",
                                                  FL_COMMAND_ACTUATES};
#else
static const fl_command_descriptor probe_reset = {sizeof(fl_command_descriptor), "reset", "Clear the latch",
                                                  FL_COMMAND_ACTUATES};
#endif
#ifndef PROBE_COMMANDS
static const fl_command_descriptor *const probe_commands[] = {&probe_reset, NULL};
#define PROBE_COMMANDS probe_commands
#endif

static const fl_driver_descriptor probe_driver = {
    sizeof(fl_driver_descriptor), PROBE_WIRES, "probe", "Probe detector (conformance)",
    PROBE_CLASS, "A toy STX/ETX protocol for proving the suite's checks", probe_needs, 0, PROBE_COMMANDS,
};
static const fl_driver_descriptor *const probe_drivers[] = {&probe_driver};

static const fl_plugin_descriptor probe_descriptor = {
    sizeof(fl_plugin_descriptor), 1, BROKEN_PLUGIN_ID, "Conformance probe", "firelink conformance", "1.0.0",
    "Apache-2.0", NULL, NULL, probe_drivers,
};

static fl_status probe_negotiate(uint32_t host_version, uint32_t *agreed) {
    if (!agreed) return FL_MISUSE;
    if (FL_VERSION_MAJOR(host_version) != FL_ABI_VERSION_MAJOR) return FL_INCOMPATIBLE;
    *agreed = host_version < FL_ABI_VERSION ? host_version : FL_ABI_VERSION;
    g_negotiated = 1;
    return FL_OK;
}

static fl_status probe_init(const fl_host *host, const char *path) {
    (void)path;
    if (!g_negotiated || g_initialized || !host) return FL_MISUSE;
#ifdef BROKEN_CRASH_INIT
    raise(SIGSEGV); /* a null dereference, made deterministic */
#endif
    g_initialized = 1;
    return FL_OK;
}

static void probe_deinit(void) { g_initialized = 0; }

static const fl_plugin_descriptor *probe_get_descriptor(void) { return g_negotiated ? &probe_descriptor : NULL; }

static fl_status probe_create(const char *driver_id, const fl_host *host, const uint8_t *cfg, size_t size,
                              const fl_device **out) {
    probe_device *dev;
    if (out) *out = NULL;
    if (!g_initialized || !driver_id || !host || !out || (!cfg && size)) return FL_MISUSE;
    if (strcmp(driver_id, "probe") != 0) {
        if (host->log) host->log(host, FL_LOG_ERROR, "this plugin has one driver, \"probe\"");
        return FL_NOT_FOUND;
    }
    if (!fl_mp_is_map(cfg, size)) {
        if (host->log) host->log(host, FL_LOG_ERROR, "config: expected one msgpack map");
        return FL_INVALID_ARGUMENT;
    }
    dev = (probe_device *)calloc(1, sizeof *dev);
    if (!dev) return FL_NO_MEMORY;
#ifdef BROKEN_LEAK
    {
        /* A per-instance buffer and a file nobody frees or closes. */
        dev->leaked_buf = (char *)malloc(64 * 1024);
        if (dev->leaked_buf) memset(dev->leaked_buf, 1, 64 * 1024);
        dev->leaked_fd = open("/dev/null", O_RDONLY);
    }
#endif
    dev->abi = probe_device_functions;
    dev->abi.driver_data = dev;
    dev->host = host;
    dev->wire = (const fl_host_transport *)host->get_extension(host, FL_EXT_TRANSPORT);
    dev->timer = (const fl_host_timer *)host->get_extension(host, FL_EXT_TIMER);
    dev->state = PROBE_CREATED;
#ifdef BROKEN_KEEPS_CONFIG
    dev->config = cfg;
    dev->config_size = size;
#endif
#ifdef BROKEN_READS_PAST_HOST
    {
        /* Built against a later minor whose fl_host grew a field, read without FL_HAS_FIELD. */
        struct later_host {
            fl_host v1_0;
            const char *site_name;
        };
        const char *volatile site = ((const struct later_host *)host)->site_name;
        (void)site;
    }
#endif
    *out = &dev->abi;
    return FL_OK;
}

#ifdef BROKEN_IDENTIFY_ANYTHING
/* Binds every connection, whatever it sent, to the first device: a stranger's bytes get a device's identity. */
static fl_status probe_identify(const char *driver_id, const uint8_t *data, size_t size, char *identity,
                                size_t identity_cap, size_t *identity_len) {
    (void)data;
    if (!driver_id || !identity || !identity_len) return FL_MISUSE;
    if (strcmp(driver_id, "probe") != 0) return FL_NOT_FOUND;
    if (size < 2) return FL_BUSY;
    if (identity_cap < 7) return FL_INVALID_ARGUMENT;
    memcpy(identity, "probe-1", 7);
    *identity_len = 7;
    return FL_OK;
}
static const fl_plugin_identify probe_identify_ext = {sizeof(fl_plugin_identify), probe_identify};
#endif

static const void *probe_plugin_extension(const char *id) {
#ifdef BROKEN_IDENTIFY_ANYTHING
    if (g_negotiated && id && strcmp(id, FL_EXT_IDENTIFY) == 0) return &probe_identify_ext;
#endif
    (void)id;
    return NULL;
}

FL_EXPORT const fl_plugin_entry firelink_plugin_entry = {
    sizeof(fl_plugin_entry), BROKEN_ABI_VERSION, probe_negotiate,  probe_init,
    probe_deinit,            probe_get_descriptor, probe_create, probe_plugin_extension,
};
