/* firelink v1 plugin ABI: versions, status codes, log levels and the tag words used on every function.
 *
 * This header, with the others in this folder, *is* the specification of the ABI; docs/abi.md numbers its rules.
 * Pure C99; compiled by the test suite as C99, C11, C++17 and C++20 with -Wall -Wextra -pedantic -Werror.
 *
 * Tag words. Every function pointer's comment ends with one line: [thread: T | state: S]
 *   thread: main    the host's control thread for this plugin: loading, negotiation, init, deinit, descriptors and
 *                   device creation happen there, one call at a time.
 *   thread: device  the device instance's strand: the host never calls one instance concurrently, and each call
 *                   happens-after the previous one for that instance, but successive calls may run on different OS
 *                   threads. Different instances are called concurrently.
 *   thread: any     any thread, concurrently with anything, including from threads the plugin created itself.
 *   state: loaded | negotiated | initialized      the plugin's states (see plugin.h, fl_plugin_entry)
 *   state: created | started | stopped            a device instance's states (see plugin.h, fl_device)
 *                   A host function tagged "state: started" may also be called from inside the device's start
 *                   (to open its wire, arm its timers, emit its current state), but not after stop has begun.
 *   state: any                                     every state in which the object exists
 * A call made in a state its tag does not list is MISUSE: the callee returns FL_MISUSE (a function that returns a
 * pointer returns NULL; a void function does nothing) and must not crash.
 *
 * Ownership, once for every function: everything passed into a call is borrowed for the duration of that call and
 * the receiver copies what it keeps. Nothing is ever freed on the other side of the boundary. Pointers that are
 * returned (descriptors, extension structs) stay valid for as long as their comment says.
 *
 * Exceptions, longjmp and C++ types never cross the boundary.
 */
#ifndef FIRELINK_ABI_H
#define FIRELINK_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ------------------------------------------------------------------------------------------------
 * A version is packed in 32 bits: major (10 bits) . minor (10 bits) . patch (12 bits), the Vulkan way, so that
 * versions of one major compare with < and >.
 * Major 1 is forever: any 1.x plugin loads in any 1.y host. New minors only append struct fields and extensions.
 */
#define FL_MAKE_VERSION(major, minor, patch) \
    ((((uint32_t)(major)) << 22) | (((uint32_t)(minor) & 0x3FFu) << 12) | ((uint32_t)(patch) & 0xFFFu))
#define FL_VERSION_MAJOR(version) ((uint32_t)(version) >> 22)
#define FL_VERSION_MINOR(version) (((uint32_t)(version) >> 12) & 0x3FFu)
#define FL_VERSION_PATCH(version) ((uint32_t)(version) & 0xFFFu)

#define FL_ABI_VERSION_MAJOR 1
#define FL_ABI_VERSION_MINOR 1
#define FL_ABI_VERSION_PATCH 0
/* The version of the headers you compile against. */
#define FL_ABI_VERSION FL_MAKE_VERSION(FL_ABI_VERSION_MAJOR, FL_ABI_VERSION_MINOR, FL_ABI_VERSION_PATCH)

/* True when the struct at `ptr` (of type `type`, starting with struct_size) is large enough to hold `field`.
 * Read a field of a struct that came across the boundary only when this holds: the other side may be older. */
#define FL_HAS_FIELD(ptr, type, field) \
    ((ptr) != NULL && (size_t)(ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---- Status codes --------------------------------------------------------------------------------------------
 * Zero is success; errors are negative and their values never change. A caller treats an unknown negative value as
 * FL_ERROR. */
typedef int32_t fl_status;

#define FL_OK                 0
#define FL_ERROR             -1  /* failed, for a reason the callee logged */
#define FL_MISUSE            -2  /* called in a state its tag does not allow, or with a NULL where one is not allowed */
#define FL_INCOMPATIBLE      -3  /* version negotiation failed */
#define FL_INVALID_ARGUMENT  -4  /* malformed config, command or event: the callee logged which field and why */
#define FL_NO_MEMORY         -5
#define FL_UNSUPPORTED       -6  /* unknown command, driver id, extension or option */
#define FL_BUSY              -7  /* temporarily unable: try again later (backpressure) */
#define FL_IO                -8  /* the wire failed */
#define FL_TIMEOUT           -9  /* the device did not answer in time */
#define FL_CLOSED           -10  /* the wire or the instance is closed */
#define FL_NOT_FOUND        -11  /* the named thing does not exist */

/* ---- Log levels ---------------------------------------------------------------------------------------------- */
#define FL_LOG_TRACE 0
#define FL_LOG_DEBUG 1
#define FL_LOG_INFO  2
#define FL_LOG_WARN  3
#define FL_LOG_ERROR 4

/* ---- Device classes ------------------------------------------------------------------------------------------
 * A driver declares the class of device it drives: one of the four below, or a vendor class written
 * "vendor:<reverse-dns>", for example "vendor:com.acme.sprinkler". The host refuses any other string. */
#define FL_CLASS_ARC_FAULT_BREAKER  "arc_fault_breaker"   /* 灭弧式智慧用电: smart breaker / electrical-fire monitor */
#define FL_CLASS_GAS_SHUTOFF_VALVE  "gas_shutoff_valve"   /* 燃气安全智能控制: %LEL gas detector with shutoff valve */
#define FL_CLASS_PYROLYSIS_DETECTOR "pyrolysis_detector"  /* 热解粒子探测: pyrolysis-particle detector */
#define FL_CLASS_FIRE_PANEL         "fire_panel"          /* 远程监控: fire alarm panel via a GB/T 26875.3 UITD */
#define FL_CLASS_VENDOR_PREFIX      "vendor:"

/* ---- Export ----------------------------------------------------------------------------------------------------
 * Put FL_EXPORT on the one symbol a plugin exports, firelink_plugin_entry. The SDK's linker version script
 * (applied by the CMake helper firelink_add_plugin) hides every other symbol. */
#if defined(_WIN32)
#define FL_EXPORT __declspec(dllexport)
#elif defined(__GNUC__)
#define FL_EXPORT __attribute__((visibility("default")))
#else
#define FL_EXPORT
#endif

/* The name of the one exported symbol. */
#define FL_ENTRY_SYMBOL "firelink_plugin_entry"

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_ABI_H */
