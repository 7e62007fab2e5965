/* bench_plugin: the event source of pipeline_bench, built like a vendor plugin (firelink_add_plugin).
 *
 * One driver, "bench", of the standard class arc_fault_breaker (so the host's per-class code check runs on every
 * alarm). At create time the device pre-encodes two events with the C payload helpers:
 *   telemetry  {"schema":1,"kind":"telemetry","code":"measurements","values":[
 *                 {"name":"current","value":3.25,"unit":"A"},{"name":"temperature","value":41.5,"unit":"C"},
 *                 {"name":"t_ns","value":<uint64>}]}
 *   alarm      {"schema":1,"kind":"alarm","code":"arc_fault","event_id":"arc-1","severity":"critical",
 *                 "values":[{"name":"t_ns","value":<uint64>}]}
 * Both end with the t_ns value written as a msgpack uint64 (0xcf + 8 bytes big-endian), so the last 8 bytes of each
 * event are the CLOCK_MONOTONIC nanoseconds (the clock of std::chrono::steady_clock on Linux) read just before
 * host->emit. Nothing else is encoded per event: the loop patches 8 bytes and calls emit.
 *
 * Commands (msgpack {"id","name","args"}; only "id" and "name" are read):
 *   "burst"         emits `burst` events in a tight loop on the device strand, inside the command call;
 *   "thread_burst"  starts a plugin-owned thread that emits `burst` events (emit is [thread: any]) and returns
 *                   FL_OK at once; FL_BUSY while the previous thread burst still runs;
 *   "paced_burst"   as thread_burst, but the thread emits one event every `pace_ns` (absolute deadlines from the
 *                   burst's start, clock_nanosleep in between; an event that is late goes at once, so a rate
 *                   faster than the sleep's own overshoot comes out as short runs at that average rate): latency at a
 *                   fixed, moderate rate, where a flood would measure queueing.
 * Each burst ends with one command_result event (ok = every emit returned FL_OK) carrying the counts in its values:
 * "emitted" (FL_OK), "failed" (anything else), "loop_ns" (the loop's own duration, clock reads included).
 * Every `alarm_every`-th event of the device (counted over its life, from 1) is the alarm; the rest are telemetry.
 *
 * Driver config (msgpack map): burst (integer, events per command, default 10000), alarm_every (integer, default
 * 100; 0 = telemetry only), pace_ns (integer, the interval of "paced_burst", default 50000: 20 k events/s).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthreads under -std=c99 */

#include <firelink/firelink.h>
#include <firelink/payload.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_device {
    fl_device abi;
    const fl_host *host;
    int started;
    int64_t burst;
    int64_t alarm_every;
    int64_t pace_ns;
    uint64_t index; /* events emitted over the device's life (alarm placement) */

    uint8_t telemetry[256];
    size_t telemetry_len;
    uint8_t alarm[256];
    size_t alarm_len;

    /* the plugin-owned thread of "thread_burst" */
    pthread_mutex_t mu;
    pthread_t thread;
    int thread_joinable;
    int thread_running;
    char command_id[65];
    int64_t thread_pace_ns; /* 0: flood */
} bench_device;

static uint32_t g_agreed_version;
static int g_negotiated;
static int g_initialized;

static bench_device *bench_from(const fl_device *d) { return d ? (bench_device *)d->driver_data : NULL; }

static void bench_log(const fl_host *host, int32_t level, const char *message) {
    if (host && host->log) host->log(host, level, message);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps until CLOCK_MONOTONIC reaches `deadline` (ns); returns at once when it has. */
static void sleep_until(uint64_t deadline) {
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline / 1000000000u);
    ts.tv_nsec = (long)(deadline % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

static void put_be64(uint8_t *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; ++i) p[i] = (uint8_t)(v >> (8 * (7 - i)));
}

/* Starts an event of `keys` keys in buf: "schema" 1, "kind" and "code" first. */
static void begin_event(fl_mp_writer *w, uint8_t *buf, size_t cap, uint32_t keys, const char *kind, const char *code) {
    fl_mp_writer_init(w, buf, cap);
    fl_mp_map(w, keys);
    fl_mp_kv_int(w, "schema", 1);
    fl_mp_kv_str(w, "kind", kind);
    fl_mp_kv_str(w, "code", code);
}

/* A point of "values" with a unit: {"name":name,"value":value,"unit":unit}. */
static void measured_point(fl_mp_writer *w, const char *name, double value, const char *unit) {
    fl_mp_map(w, 3);
    fl_mp_kv_str(w, "name", name);
    fl_mp_kv_double(w, "value", value);
    fl_mp_kv_str(w, "unit", unit);
}

/* A point of "values" that counts: {"name":name,"value":count}. */
static void count_point(fl_mp_writer *w, const char *name, uint64_t count) {
    fl_mp_map(w, 2);
    fl_mp_kv_str(w, "name", name);
    fl_mp_kv_int(w, "value", (int64_t)count);
}

/* The stamp: {"name":"t_ns","value":<0xcf + 8 bytes>} as the last point of "values", the last key. */
static void stamp_point(fl_mp_writer *w) {
    fl_mp_map(w, 2);
    fl_mp_kv_str(w, "name", "t_ns");
    fl_mp_str(w, "value");
    fl_mp__put_be(w, 0xcf, 0, 8); /* fixed width, patched before every emit */
}

static int encode_templates(bench_device *dev) {
    fl_mp_writer w;

    begin_event(&w, dev->telemetry, sizeof dev->telemetry, 4, "telemetry", "measurements");
    fl_mp_str(&w, "values");
    fl_mp_array(&w, 3);
    measured_point(&w, "current", 3.25, "A");
    measured_point(&w, "temperature", 41.5, "C");
    stamp_point(&w);
    if (!fl_mp_ok(&w)) return 0;
    dev->telemetry_len = w.len;

    begin_event(&w, dev->alarm, sizeof dev->alarm, 6, "alarm", "arc_fault");
    fl_mp_kv_str(&w, "event_id", "arc-1");
    fl_mp_kv_str(&w, "severity", "critical");
    fl_mp_str(&w, "values");
    fl_mp_array(&w, 1);
    stamp_point(&w);
    if (!fl_mp_ok(&w)) return 0;
    dev->alarm_len = w.len;
    return 1;
}

/* The measured loop. Runs on the device strand ("burst") or on the plugin's thread ("thread_burst"), never both at
 * once (a thread burst makes the device refuse commands until it ends). */
static void run_burst(bench_device *dev, const char *command_id, int64_t pace_ns) {
    uint8_t tel[256], alarm[256], result[256];
    const size_t tel_len = dev->telemetry_len, alarm_len = dev->alarm_len;
    const int64_t alarm_every = dev->alarm_every;
    uint64_t emitted = 0, failed = 0, t0, t1;
    int64_t i;
    fl_mp_writer w;

    /* Private copies: a burst may run on another thread while the device's own buffers stay untouched. */
    memcpy(tel, dev->telemetry, tel_len);
    memcpy(alarm, dev->alarm, alarm_len);

    t0 = mono_ns();
    for (i = 0; i < dev->burst; ++i) {
        const uint64_t n = ++dev->index;
        const int is_alarm = alarm_every > 0 && n % (uint64_t)alarm_every == 0;
        uint8_t *ev = is_alarm ? alarm : tel;
        const size_t len = is_alarm ? alarm_len : tel_len;
        if (pace_ns > 0) {
            const uint64_t deadline = t0 + (uint64_t)i * (uint64_t)pace_ns;
            if (mono_ns() < deadline) sleep_until(deadline); /* late: at once, no syscall */
        }
        put_be64(ev + len - 8, mono_ns());
        if (dev->host->emit(dev->host, ev, len) == FL_OK) ++emitted;
        else ++failed;
    }
    t1 = mono_ns();

    /* The burst is over: the device takes a new command from here on (it joins this thread first), so the host's
     * next command is not refused FL_BUSY while this thread finishes its command_result. */
    pthread_mutex_lock(&dev->mu);
    dev->thread_running = 0;
    pthread_mutex_unlock(&dev->mu);

    begin_event(&w, result, sizeof result, 6, "command_result", "burst");
    fl_mp_kv_str(&w, "command_id", command_id);
    fl_mp_kv_bool(&w, "ok", failed == 0);
    fl_mp_str(&w, "values");
    fl_mp_array(&w, 3);
    count_point(&w, "emitted", emitted);
    count_point(&w, "failed", failed);
    count_point(&w, "loop_ns", t1 - t0);
    if (!fl_mp_ok(&w) || dev->host->emit(dev->host, result, w.len) != FL_OK)
        bench_log(dev->host, FL_LOG_ERROR, "the host did not take the command_result");
}

static void *burst_thread(void *arg) {
    bench_device *dev = (bench_device *)arg;
    run_burst(dev, dev->command_id, dev->thread_pace_ns);
    return NULL;
}

static void join_thread(bench_device *dev) {
    if (dev->thread_joinable) {
        pthread_join(dev->thread, NULL);
        dev->thread_joinable = 0;
    }
}

static fl_status bench_start(const fl_device *d) {
    bench_device *dev = bench_from(d);
    if (!dev || dev->started) return FL_MISUSE;
    dev->started = 1;
    return FL_OK;
}

static fl_status bench_stop(const fl_device *d) {
    bench_device *dev = bench_from(d);
    if (!dev || !dev->started) return FL_MISUSE;
    join_thread(dev); /* after stop returns the plugin emits nothing more */
    dev->started = 0;
    return FL_OK;
}

static void bench_destroy(const fl_device *d) {
    bench_device *dev = bench_from(d);
    if (!dev) return;
    join_thread(dev);
    pthread_mutex_destroy(&dev->mu);
    free(dev);
}

static fl_status bench_command(const fl_device *d, const uint8_t *command, size_t size) {
    bench_device *dev = bench_from(d);
    fl_mp_value id, name;
    int running;
    if (!dev || !dev->started) return FL_MISUSE;
    if (!fl_mp_is_map(command, size) || !fl_mp_find(command, size, "id", &id) || id.type != FL_MP_STR ||
        id.str_len == 0 || id.str_len > 64 || !fl_mp_find(command, size, "name", &name) || name.type != FL_MP_STR)
        return FL_INVALID_ARGUMENT;

    pthread_mutex_lock(&dev->mu);
    running = dev->thread_running;
    pthread_mutex_unlock(&dev->mu);
    if (running) return FL_BUSY;
    join_thread(dev);
    memcpy(dev->command_id, id.str, id.str_len);
    dev->command_id[id.str_len] = '\0';

    if (name.str_len == 5 && memcmp(name.str, "burst", 5) == 0) {
        run_burst(dev, dev->command_id, 0);
        return FL_OK;
    }
    if ((name.str_len == 12 && memcmp(name.str, "thread_burst", 12) == 0) ||
        (name.str_len == 11 && memcmp(name.str, "paced_burst", 11) == 0)) {
        dev->thread_pace_ns = name.str_len == 11 ? dev->pace_ns : 0;
        pthread_mutex_lock(&dev->mu);
        dev->thread_running = 1;
        pthread_mutex_unlock(&dev->mu);
        if (pthread_create(&dev->thread, NULL, burst_thread, dev) != 0) {
            dev->thread_running = 0;
            bench_log(dev->host, FL_LOG_ERROR, "cannot start the burst thread");
            return FL_ERROR;
        }
        dev->thread_joinable = 1;
        return FL_OK;
    }
    return FL_UNSUPPORTED;
}

static const void *bench_get_extension(const fl_device *d, const char *id) {
    (void)d;
    (void)id;
    return NULL;
}

/* The device's functions, the same for every instance: create_device copies them and points driver_data at
 * the instance. */
static const fl_device bench_device_functions = {.struct_size = sizeof(fl_device), .start = bench_start,
                                                 .stop = bench_stop, .destroy = bench_destroy, .command = bench_command,
                                                 .get_extension = bench_get_extension};

/* ---- plugin level ---- */

static const fl_driver_descriptor bench_driver = {
    sizeof(fl_driver_descriptor),
    0, /* no wire: it emits on command */
    "bench",
    "Pipeline benchmark source",
    FL_CLASS_ARC_FAULT_BREAKER,
    "Emits bursts of pre-encoded telemetry with an alarm every alarm_every events.",
    NULL,
    0,
};

static const fl_driver_descriptor *const bench_drivers[] = {&bench_driver};

static const fl_plugin_descriptor bench_plugin = {
    sizeof(fl_plugin_descriptor),
    1,
    "org.firelink.bench.pipeline",
    "Pipeline benchmark",
    "firelink tests",
    "1.0.0",
    "Apache-2.0",
    NULL,
    "The event source of tests/bench/pipeline_bench.",
    bench_drivers,
};

static fl_status bench_negotiate(uint32_t host_version, uint32_t *agreed) {
    if (!agreed) return FL_MISUSE;
    if (FL_VERSION_MAJOR(host_version) != FL_ABI_VERSION_MAJOR) return FL_INCOMPATIBLE;
    g_agreed_version = host_version < FL_ABI_VERSION ? host_version : FL_ABI_VERSION;
    *agreed = g_agreed_version;
    g_negotiated = 1;
    return FL_OK;
}

static fl_status bench_init(const fl_host *host, const char *path) {
    (void)host;
    (void)path;
    if (!g_negotiated || g_initialized) return FL_MISUSE;
    g_initialized = 1;
    return FL_OK;
}

static void bench_deinit(void) { g_initialized = 0; }

static const fl_plugin_descriptor *bench_get_descriptor(void) { return g_negotiated ? &bench_plugin : NULL; }

static int bench_config_int(const fl_host *host, const uint8_t *cfg, size_t size, const char *key, int64_t min,
                            int64_t max, int64_t *value) {
    fl_mp_value v;
    char msg[160];
    if (!fl_mp_find(cfg, size, key, &v)) return 1;
    if (v.type != FL_MP_INT || v.i < min || v.i > max) {
        snprintf(msg, sizeof msg, "config key '%s': expected an integer from %lld to %lld", key, (long long)min,
                 (long long)max);
        bench_log(host, FL_LOG_ERROR, msg);
        return 0;
    }
    *value = v.i;
    return 1;
}

static fl_status bench_create_device(const char *driver_id, const fl_host *host, const uint8_t *cfg, size_t size,
                                     const fl_device **out) {
    bench_device *dev;
    int64_t burst = 10000, alarm_every = 100, pace_ns = 50000;
    if (out) *out = NULL;
    if (!g_initialized || !driver_id || !host || !out || (!cfg && size)) return FL_MISUSE;
    if (strcmp(driver_id, "bench") != 0) return FL_NOT_FOUND;
    if (!fl_mp_is_map(cfg, size)) {
        bench_log(host, FL_LOG_ERROR, "config: expected one msgpack map");
        return FL_INVALID_ARGUMENT;
    }
    if (!bench_config_int(host, cfg, size, "burst", 1, 100000000, &burst) ||
        !bench_config_int(host, cfg, size, "alarm_every", 0, 100000000, &alarm_every) ||
        !bench_config_int(host, cfg, size, "pace_ns", 1, 1000000000, &pace_ns))
        return FL_INVALID_ARGUMENT;
    dev = (bench_device *)calloc(1, sizeof *dev);
    if (!dev) return FL_NO_MEMORY;
    dev->abi = bench_device_functions;
    dev->abi.driver_data = dev;
    dev->host = host;
    dev->burst = burst;
    dev->alarm_every = alarm_every;
    dev->pace_ns = pace_ns;
    pthread_mutex_init(&dev->mu, NULL);
    if (!encode_templates(dev)) {
        bench_log(host, FL_LOG_ERROR, "the event templates did not fit their buffers");
        pthread_mutex_destroy(&dev->mu);
        free(dev);
        return FL_ERROR;
    }
    *out = &dev->abi;
    return FL_OK;
}

static const void *bench_plugin_extension(const char *id) {
    (void)id;
    return NULL;
}

FL_EXPORT const fl_plugin_entry firelink_plugin_entry = {
    sizeof(fl_plugin_entry), FL_ABI_VERSION,        bench_negotiate,    bench_init,
    bench_deinit,            bench_get_descriptor, bench_create_device, bench_plugin_extension,
};
