//! Process- and thread-level system calls the server and the bench need beyond `std`: the
//! open-files limit, CPU time, CPU pinning, a SIGINT/SIGTERM flag, and `poll(2)` readiness
//! over a few sockets. All but the signal handler go through `rustix`'s safe wrappers.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use rustix::time::{ClockId, clock_gettime};

/// Raises the soft limit on open files to the hard limit, and beyond it to `want` when the
/// hard limit is lower and the process may raise it (root); answers the soft limit now in
/// force (`u64::MAX` for no limit). A refused raise leaves the limit as it was.
pub fn raise_nofile_limit(want: u64) -> io::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    let cur = limit.current.unwrap_or(u64::MAX);
    let max = limit.maximum.unwrap_or(u64::MAX);
    if max < want {
        let both = Rlimit {
            current: Some(want),
            maximum: Some(want),
        };
        if setrlimit(Resource::Nofile, both).is_ok() {
            return Ok(want);
        }
    }
    if cur < max {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Ok(max);
        }
    }
    Ok(cur)
}

/// User plus system CPU time used so far by the calling thread (`thread`) or by the whole
/// process.
pub fn cpu_time(thread: bool) -> Duration {
    let clock = if thread {
        ClockId::ThreadCPUTime
    } else {
        ClockId::ProcessCPUTime
    };
    let t = clock_gettime(clock);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    use rustix::thread::{CpuSet, sched_setaffinity};
    if cpu >= CpuSet::MAX_CPU {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "CPU number too large",
        ));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// `t` as a wait's timeout, capped at a day (a millisecond count that fits a `c_int`, so
/// that every kernel takes it).
pub(crate) fn timespec(t: Duration) -> Timespec {
    let t = t.min(Duration::from_secs(86_400));
    Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: t.subsec_nanos().into(),
    }
}

/// Set by the SIGINT/SIGTERM handler.
static TERMINATE: AtomicBool = AtomicBool::new(false);

/// The SIGINT/SIGTERM handler: sets [`TERMINATE`].
extern "C" fn on_terminate(_signal: libc::c_int) {
    // An atomic store is async-signal-safe.
    TERMINATE.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM set a flag (see [`terminate_requested`]) instead of killing the
/// process. Blocking calls they interrupt return `EINTR` (no `SA_RESTART`).
pub fn catch_termination() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is a plain C struct; all-zero is an empty mask, no flags.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `sa` is a valid sigaction whose handler only does an atomic store
        // (async-signal-safe); the old action is not asked for (null).
        if unsafe { libc::sigaction(sig, &raw const sa, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`catch_termination`].
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::Relaxed)
}

/// Waits until one of `sockets` is readable or `timeout` passes (None: forever; rounded up
/// to whole milliseconds); sets `readable[i]` for each readable (or failed) socket and
/// returns how many there are. An interrupted wait returns 0.
pub fn poll_readable(
    sockets: &[&UdpSocket],
    readable: &mut Vec<bool>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let mut fds: Vec<PollFd<'_>> = sockets
        .iter()
        .map(|s| PollFd::new(*s, PollFlags::IN))
        .collect();
    let timeout = timeout.map(timespec);
    let r = rustix::event::poll(&mut fds, timeout.as_ref());
    readable.clear();
    readable.extend(fds.iter().map(|p| !p.revents().is_empty()));
    match r {
        Ok(n) => Ok(n),
        Err(rustix::io::Errno::INTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_clocks_and_poll() {
        assert!(raise_nofile_limit(64).unwrap() >= 64);
        let start = cpu_time(true);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(cpu_time(true) > start);
        assert!(cpu_time(false) >= cpu_time(true));
        pin_current_thread(0).unwrap();
        assert!(pin_current_thread(usize::MAX).is_err());

        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut readable = Vec::new();
        let n = poll_readable(&[&a, &b], &mut readable, Some(Duration::from_millis(5))).unwrap();
        assert_eq!((n, readable.as_slice()), (0, &[false, false][..]));
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        let n = poll_readable(&[&a, &b], &mut readable, Some(Duration::from_secs(2))).unwrap();
        assert_eq!((n, readable.as_slice()), (1, &[false, true][..]));
        assert!(!terminate_requested());
        catch_termination().unwrap();
    }
}
