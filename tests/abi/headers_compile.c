/* Compiled as C99 and C11 with -Wall -Wextra -pedantic -Werror (see CMakeLists.txt): the public C headers must stay
 * clean in every C mode a vendor's toolchain may use. Uses each header a little, as a C plugin would. */
#include <firelink/firelink.h>
#include <firelink/payload.h>

#if !defined(__STDC_VERSION__)
#error "expected a C99 or later compiler"
#elif FL_TEST_EXPECT_STDC_VERSION == 99 && __STDC_VERSION__ != 199901L
#error "C_STANDARD 99 did not apply"
#elif FL_TEST_EXPECT_STDC_VERSION == 11 && __STDC_VERSION__ != 201112L
#error "C_STANDARD 11 did not apply"
#endif

static fl_status probe_negotiate(uint32_t host_abi_version, uint32_t *agreed_abi_version) {
    if (FL_VERSION_MAJOR(host_abi_version) != FL_ABI_VERSION_MAJOR) return FL_INCOMPATIBLE;
    *agreed_abi_version = host_abi_version < FL_ABI_VERSION ? host_abi_version : FL_ABI_VERSION;
    return FL_OK;
}

/* A C plugin's entry, written with C99 designated initialisers: the header must allow it. */
FL_EXPORT const fl_plugin_entry firelink_plugin_entry = {
    .struct_size = sizeof(fl_plugin_entry),
    .abi_version = FL_ABI_VERSION,
    .negotiate = probe_negotiate,
};

/* A 1.1 driver declaring its commands, positionally as most C plugins write descriptors. */
static const fl_command_descriptor probe_close = {sizeof(fl_command_descriptor), "close_valve", "Close the valve",
                                                  FL_COMMAND_ACTUATES};
static const fl_command_descriptor probe_open = {sizeof(fl_command_descriptor), "open_valve", NULL,
                                                 FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES};
static const fl_command_descriptor *const probe_commands[] = {&probe_close, &probe_open, NULL};
static const char *const probe_needs[] = {NULL};
extern const fl_driver_descriptor fl_probe_driver;
const fl_driver_descriptor fl_probe_driver = {
    sizeof(fl_driver_descriptor), FL_WIRE_RS485_BUS, "gv", "Probe valve", FL_CLASS_GAS_SHUTOFF_VALVE, NULL,
    probe_needs, 0, probe_commands,
};

size_t fl_probe_emit_sample(const fl_host *host, uint8_t *buf, size_t cap);
size_t fl_probe_emit_sample(const fl_host *host, uint8_t *buf, size_t cap) {
    fl_mp_writer w;
    fl_mp_value v;
    fl_mp_writer_init(&w, buf, cap);
    fl_mp_map(&w, 3);
    fl_mp_kv_int(&w, "schema", 1);
    fl_mp_kv_str(&w, "kind", "telemetry");
    fl_mp_kv_double(&w, "lel", 12.5);
    if (!fl_mp_ok(&w) || !fl_mp_is_map(buf, w.len) || !fl_mp_find(buf, w.len, "kind", &v)) return 0;
    if (FL_HAS_FIELD(host, fl_host, emit) && host->emit) host->emit(host, buf, w.len);
    return w.len;
}
