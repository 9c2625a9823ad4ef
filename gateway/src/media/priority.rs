//! Real-time scheduling for shard threads.
//!
//! A shard is late for every packet whenever it waits for a core, and on a host shared with
//! other work (a build, a backup, a co-located service) that wait is what dominates p99
//! latency, not the transcoding. `SCHED_RR` at a modest priority lets a shard take a core the
//! moment a packet arrives, as media engines (Asterisk `-p`, FreeSWITCH `-rp`) do. The kernel's
//! real-time throttling (95 % by default) still leaves the rest of the system a share if a
//! shard ever spins. Off unless `media.realtime_priority` asks for it.

use std::io;

/// Puts the calling thread under `SCHED_RR` at `priority` (1–99).
///
/// Needs `RLIMIT_RTPRIO` ≥ `priority` (systemd `LimitRTPRIO=`) or `CAP_SYS_NICE`; the error
/// is the kernel's (`EPERM` without either).
pub(crate) fn make_current_thread_realtime(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: pid 0 names the calling thread, and `param` is a valid, initialised
    // `sched_param` that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
