/* firelink v1: what a plugin exports.
 *
 * A plugin is a shared library that exports exactly one symbol, the const struct firelink_plugin_entry. The host:
 *   1. loads the library (RTLD_NOW | RTLD_LOCAL) and reads firelink_plugin_entry          plugin state: loaded
 *   2. checks entry.struct_size and the major of entry.abi_version, then calls negotiate    plugin state: negotiated
 *   3. may read the descriptor (get_descriptor) without initialising, to list the plugin
 *   4. calls init                                                                          plugin state: initialized
 *   5. creates device instances (create_device) and drives them (fl_device)
 *   6. destroys every instance, calls deinit (state: negotiated), and unloads the library.
 * A host may repeat 4-6 (init/deinit cycles) and load, unload and reload the library.
 */
#ifndef FIRELINK_PLUGIN_H
#define FIRELINK_PLUGIN_H

#include "abi.h"
#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Describing drivers ------------------------------------------------------------------------------------ */

/* Bits for fl_driver_descriptor.wires: the kinds of host-owned wire the driver can speak over (ext/transport.h). */
#define FL_WIRE_SERIAL       (1u << 0)  /* a point-to-point serial port (RS-232, RS-485 with one device) */
#define FL_WIRE_RS485_BUS    (1u << 1)  /* a shared RS-485 bus: one request in flight per bus, host-arbitrated */
#define FL_WIRE_TCP_CLIENT   (1u << 2)  /* the host connects to the device */
#define FL_WIRE_TCP_ACCEPTED (1u << 3)  /* the device connects in to a host listener */
#define FL_WIRE_UDP          (1u << 4)

/* Bits for fl_driver_descriptor.flags. */
/* The driver does its own I/O (sockets, files, threads) instead of host-owned transports. The host warns about
 * it, and the conformance suite cannot replay, garble or cut its wire. */
#define FL_DRIVER_OWN_IO ((uint64_t)1 << 0)

/* ---- Declaring commands (ABI 1.1) ----------------------------------------------------------------------------
 * A driver lists the commands it accepts, and says of each whether it moves something in the world. The host
 * requires select-before-operate for every actuating command, interlocks restoring ones while the device is in
 * alarm, and refuses a name the driver did not declare (FL_UNSUPPORTED) before it reaches the driver. A driver that
 * declares nothing (commands NULL, or a 1.0 plugin) has every command treated as actuating and restoring.
 * Rationale: the host cannot tell a read from a valve opening by the command's name; only the driver knows. */

/* Bits for fl_command_descriptor.flags. The host refuses a descriptor with any other bit set. */
#define FL_COMMAND_ACTUATES ((uint64_t)1 << 0)  /* moves something in the world: the host requires select-before-operate */
/* Reopens or re-energises (open a valve, close a breaker): interlocked while the device is in alarm. Only together
 * with FL_COMMAND_ACTUATES. */
#define FL_COMMAND_RESTORES ((uint64_t)1 << 1)

typedef struct fl_command_descriptor {
    uint32_t struct_size;    /* sizeof(fl_command_descriptor) as the plugin compiled it */

    /* The command's "name" in {"id", "name", "args"} (docs/events.md): [a-z0-9][a-z0-9_.-]*, at most 64 bytes,
     * unique within the driver, never changes once published: operators and the platform send it. */
    const char *name;
    const char *description; /* UTF-8, at most 256 bytes; may be NULL */
    uint64_t flags;          /* FL_COMMAND_* bits */
} fl_command_descriptor;

/* At most this many commands per driver; the host refuses a longer list. */
#define FL_MAX_COMMANDS 64u

typedef struct fl_driver_descriptor {
    uint32_t struct_size;   /* sizeof(fl_driver_descriptor) as the plugin compiled it */

    /* FL_WIRE_* bits: the wires the driver can speak over. 0 means it uses no host wire: a driver with
     * FL_DRIVER_OWN_IO, or one that only computes from timers (a virtual or aggregate device). */
    uint32_t wires;

    /* Unique within the plugin, [a-z0-9][a-z0-9_.-]*, never changes once published: site configs name it. */
    const char *id;

    const char *name;        /* human-readable, UTF-8, non-empty */
    const char *device_class;/* FL_CLASS_* or "vendor:<reverse-dns>" */
    const char *description; /* UTF-8; may be NULL */

    /* NULL-terminated list of host extension ids the driver cannot work without ("firelink.transport/1"). The host
     * refuses to create an instance when it lacks one of them. May be NULL (needs nothing). */
    const char *const *required_extensions;

    uint64_t flags;          /* FL_DRIVER_* bits */

    /* Added in 1.1; the host reads it only when struct_size covers it. NULL-terminated list of the commands the
     * driver accepts, at most FL_MAX_COMMANDS. NULL: declares none (every command is treated as actuating and
     * restoring); a list holding only the NULL terminator: accepts no command at all. */
    const fl_command_descriptor *const *commands;
} fl_driver_descriptor;

typedef struct fl_plugin_descriptor {
    uint32_t struct_size;    /* sizeof(fl_plugin_descriptor) as the plugin compiled it */
    uint32_t driver_count;   /* number of entries in drivers; at least 1 */

    /* Reverse-DNS id, lower case, unique across all plugins a host loads: "com.acme.breakers". Never changes. */
    const char *id;
    const char *name;        /* UTF-8, non-empty */
    const char *vendor;      /* UTF-8, non-empty */
    const char *version;     /* the plugin's own version, "major.minor.patch[-suffix]" */
    const char *license;     /* SPDX expression or "proprietary"; non-empty */
    const char *url;         /* may be NULL */
    const char *description; /* may be NULL */

    /* driver_count pointers. An array of pointers, not of structs, so that fl_driver_descriptor can grow. */
    const fl_driver_descriptor *const *drivers;
} fl_plugin_descriptor;

/* ---- Device instances ---------------------------------------------------------------------------------------
 * One instance per configured device. Lifecycle:
 *     create_device ──> created ──start──> started ──stop──> stopped ──start──> started ...
 *                       destroy is allowed in every state and ends the instance.
 * While started, the instance receives wire bytes and state changes (ext/transport.h), timer ticks (ext/timer.h)
 * and commands, and emits events. */
typedef struct fl_device fl_device;

struct fl_device {
    uint32_t struct_size;   /* sizeof(fl_device) as the plugin compiled it */

    /* The plugin's own; the host never reads or writes through it. */
    void *driver_data;

    /* Starts the device: open its wire (ext/transport.h), arm its timers. Returns FL_OK, or an error after logging
     * why; on error the instance stays in its previous state and the host may retry later or destroy it.
     * [thread: device | state: created, stopped] */
    fl_status (*start)(const fl_device *device);

    /* Stops the device: after stop returns the plugin emits nothing more for it and holds no host resource for it.
     * The host cancels the instance's timers and closes its wire itself after stop, so a driver need not.
     * [thread: device | state: started] */
    fl_status (*stop)(const fl_device *device);

    /* Ends the instance and frees everything it holds. Allowed in every state (a started instance is stopped first
     * by the plugin). Passing NULL is a harmless no-op. After destroy the host never uses `device` again.
     * [thread: device | state: any] */
    void (*destroy)(const fl_device *device);

    /* Hands the device one command: a msgpack map {"id": str, "name": str, "args": map} (docs/events.md).
     * Borrowed for this call. Returns FL_OK when the driver has accepted it for execution; the outcome arrives later
     * as a command_result event carrying the same id, saying whether the device really did it (read back).
     * FL_UNSUPPORTED for a command name the driver does not know; FL_INVALID_ARGUMENT for bad arguments.
     * Must not block waiting for the device.
     * [thread: device | state: started] */
    fl_status (*command)(const fl_device *device, const uint8_t *command, size_t command_size);

    /* Returns the device-side struct of an extension ("firelink.transport/1" returns fl_device_transport), or NULL
     * when the driver does not implement it. The pointer stays valid until destroy.
     * [thread: device | state: any] */
    const void *(*get_extension)(const fl_device *device, const char *extension_id);
};

/* ---- The entry ----------------------------------------------------------------------------------------------- */

typedef struct fl_plugin_entry {
    /* sizeof(fl_plugin_entry) as the plugin compiled it. The host refuses an entry smaller than the v1.0 struct. */
    uint32_t struct_size;

    /* FL_ABI_VERSION of the headers the plugin was compiled against. The host refuses a different major without
     * calling anything. */
    uint32_t abi_version;

    /* The first call. The host offers the ABI version it speaks; the plugin answers, in *agreed_abi_version, the
     * version both will speak: for the same major, the lower of the two. A plugin that cannot work with the offered
     * version (other major, or a minor older than it needs) returns FL_INCOMPATIBLE and the host unloads it.
     * Rationale: the Vulkan loader's negotiation; after it, struct sizes tell each side which fields exist.
     * [thread: main | state: loaded, negotiated] */
    fl_status (*negotiate)(uint32_t host_abi_version, uint32_t *agreed_abi_version);

    /* Initialises the plugin. `host` is the plugin's own fl_host (device_id NULL, emit returns FL_MISUSE), valid
     * until deinit returns. `plugin_path` is the library's file path, borrowed. If init fails the host calls
     * nothing else but may unload the library. [thread: main | state: negotiated] */
    fl_status (*init)(const fl_host *host, const char *plugin_path);

    /* Releases what init acquired. Every instance has been destroyed before. [thread: main | state: initialized] */
    void (*deinit)(void);

    /* Returns the plugin's descriptor: never NULL, the same pointer every call, valid until the library is
     * unloaded. [thread: main | state: negotiated, initialized] */
    const fl_plugin_descriptor *(*get_descriptor)(void);

    /* Creates one device instance of driver `driver_id`. `host` is that device's fl_host, valid until the instance
     * is destroyed. `config` is the device's driver config (a msgpack map; config_size 0 means an empty map),
     * borrowed. On FL_OK *out_device is the new instance in state created. On failure *out_device is NULL and the
     * plugin has logged why through `host`: FL_NOT_FOUND for an unknown driver id, FL_INVALID_ARGUMENT for a config
     * it refuses (naming the key and what it expected).
     * [thread: main | state: initialized] */
    fl_status (*create_device)(const char *driver_id, const fl_host *host, const uint8_t *config, size_t config_size,
                               const fl_device **out_device);

    /* Returns a plugin-level extension struct by id, or NULL. The struct stays valid until the library is unloaded.
     * [thread: main | state: negotiated, initialized] */
    const void *(*get_extension)(const char *extension_id);
} fl_plugin_entry;

/* The one symbol a plugin exports, defined by the plugin:
 *     FL_EXPORT const fl_plugin_entry firelink_plugin_entry = { sizeof(fl_plugin_entry), FL_ABI_VERSION, ... }; */
extern FL_EXPORT const fl_plugin_entry firelink_plugin_entry;

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_PLUGIN_H */
