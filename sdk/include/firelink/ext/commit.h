/* firelink extension "firelink.commit/1": the host tells a device which of its events are committed.
 *
 * FL_OK from emit means the host took the event into its pipeline, not that it is durable: a host crash can still lose
 * it. A driver that confirms to its device (an application-level ACK, such as the GB/T 26875.3 confirm of a UITD
 * frame) must confirm only what is committed, or the device forgets an event the platform never gets.
 *
 * Host side: fl_host.get_extension(host, FL_EXT_COMMIT) on a device's fl_host returns const fl_host_commit * when the
 * host will tell the device which of its events are committed (NULL from an older host: the driver then treats FL_OK
 * as the best it can know).
 * Device side: fl_device.get_extension(device, FL_EXT_COMMIT) returns const fl_device_commit *. A device that returns
 * it declares that it confirms to its device only what on_committed has covered (docs/abi.md FL-PLUGIN-35).
 * Rationale: one number per event and a watermark keep the host's bookkeeping to a counter per device, and let one
 * call cover a whole group commit of the host's queue.
 */
#ifndef FIRELINK_EXT_COMMIT_H
#define FIRELINK_EXT_COMMIT_H

#include <firelink/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_EXT_COMMIT "firelink.commit/1"

typedef struct fl_host_commit {
    uint32_t struct_size;

    /* The number of events of this instance that emit has answered FL_OK so far. Events are numbered from 1 per
     * instance (create_device to destroy) in the order emit answered FL_OK; refused and FL_BUSY answers take no number.
     * Called right after an emit that answered FL_OK, it is that event's number (the host's own events, such as
     * `offline`, take none). [thread: device | state: started] */
    uint64_t (*emitted)(const fl_host *host);
} fl_host_commit;

typedef struct fl_device_commit {
    uint32_t struct_size;

    /* Events 1..through of this instance are committed (durable: a host crash no longer loses them). Called in order
     * with `through` increasing, possibly skipping numbers (one call may cover many events). Must return quickly.
     * Events committed while the instance was stopped are told after its next start.
     * [thread: device | state: started] */
    void (*on_committed)(const fl_device *device, uint64_t through);
} fl_device_commit;

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_EXT_COMMIT_H */
