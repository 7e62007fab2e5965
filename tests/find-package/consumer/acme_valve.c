/* A C plugin built against the installed SDK (tests/find-package): the least a C plugin needs. */
#include <firelink/firelink.h>

#include <stddef.h>

static int negotiated;

static fl_status negotiate(uint32_t host_version, uint32_t *agreed) {
    if (!agreed || FL_VERSION_MAJOR(host_version) != FL_ABI_VERSION_MAJOR) return FL_INCOMPATIBLE;
    *agreed = host_version < FL_ABI_VERSION ? host_version : FL_ABI_VERSION;
    negotiated = 1;
    return FL_OK;
}
static fl_status init(const fl_host *host, const char *path) {
    (void)host;
    (void)path;
    return negotiated ? FL_OK : FL_MISUSE;
}
static void deinit(void) {}

/* The installed headers carry ABI 1.1's declared commands. */
static const fl_command_descriptor close_valve = {sizeof(fl_command_descriptor), "close_valve", "Close the valve",
                                                  FL_COMMAND_ACTUATES};
static const fl_command_descriptor *const commands[] = {&close_valve, NULL};
static const fl_driver_descriptor valve = {
    sizeof(fl_driver_descriptor), FL_WIRE_RS485_BUS, "gv20", "ACME GV20 gas valve", FL_CLASS_GAS_SHUTOFF_VALVE,
    NULL, NULL, 0, commands};
static const fl_driver_descriptor *const drivers[] = {&valve};
static const fl_plugin_descriptor descriptor = {
    sizeof(fl_plugin_descriptor), 1, "com.example.acme.valve", "ACME valve", "ACME", "0.3.0", "proprietary", NULL,
    NULL, drivers};

static const fl_plugin_descriptor *get_descriptor(void) { return negotiated ? &descriptor : NULL; }
static fl_status create_device(const char *id, const fl_host *host, const uint8_t *cfg, size_t n,
                               const fl_device **out) {
    (void)id; (void)host; (void)cfg; (void)n;
    if (out) *out = NULL;
    return FL_UNSUPPORTED; /* this test only proves that the plugin builds and loads */
}
static const void *get_extension(const char *id) {
    (void)id;
    return NULL;
}

FL_EXPORT const fl_plugin_entry firelink_plugin_entry = {
    sizeof(fl_plugin_entry), FL_ABI_VERSION, negotiate, init, deinit, get_descriptor, create_device, get_extension};
