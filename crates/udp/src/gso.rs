//! UDP generic segmentation offload (`UDP_SEGMENT`, Linux ≥ 4.18): consecutive datagrams to
//! one destination go as one message whose payload the kernel cuts into datagrams of the
//! segment size after one trip through the stack, instead of one trip each. The receiver
//! sees the same datagrams. The limits and the "may this datagram join" rule live here,
//! once, for both send batches.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send.
pub(crate) const UDP_SEGMENT: libc::c_int = 103;
/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Largest datagram sent with GSO: one that fits a 1500-byte MTU behind IPv6 and UDP
/// headers. The kernel refuses (EINVAL) a segment larger than the route's MTU where a plain
/// send would be fragmented, so larger datagrams go one by one.
pub(crate) const MAX_SEGMENT: usize = 1452;
/// Most bytes in one GSO send: the largest UDP payload over IPv4.
pub(crate) const MAX_BYTES: usize = 65_507;

/// Whether a datagram of `next` bytes may follow `count` segments of `segment` bytes
/// (`total` bytes in all) in one GSO message: within the kernel's limits and no longer
/// than the segment size. Callers add their own rule on shorter datagrams (only the last
/// segment of a message may be shorter).
#[inline]
pub(crate) fn may_join(segment: usize, count: usize, total: usize, next: usize) -> bool {
    segment > 0
        && segment <= MAX_SEGMENT
        && next > 0
        && next <= segment
        && count < MAX_SEGMENTS
        && total + next <= MAX_BYTES
}

/// Whether an error from a GSO send says the kernel or device does not do GSO (rather than
/// something about the datagrams): then GSO should be turned off and the datagrams resent.
pub(crate) fn refused(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)
    )
}

/// Whether [`crate::SendBatch`] uses GSO; cleared for good the first time the kernel
/// refuses it.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether [`crate::SendBatch`] still uses GSO.
#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns GSO off for every [`crate::SendBatch`].
pub(crate) fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// Whether this kernel takes UDP GSO (`UDP_SEGMENT`): probed once, with two datagrams sent
/// as one message over loopback.
pub fn gso_available() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| probe().unwrap_or(false))
}

/// Sends two 8-byte datagrams as one GSO message and checks they arrive as two.
fn probe() -> std::io::Result<bool> {
    use std::net::UdpSocket;
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(rx.local_addr()?)?;
    let tail = [0u8; 4];
    let mut b = crate::SendBuffer::new(2, 4);
    b.force_gso();
    let _ = b.push(&[1, 2, 3, 4], &tail, None, None);
    let _ = b.push(&[5, 6, 7, 8], &tail, None, None);
    if b.messages() != 1 || b.send(&tx).sent != 2 {
        return Ok(false);
    }
    let mut buf = [0u8; 64];
    let first = rx.recv(&mut buf)?;
    let second = rx.recv(&mut buf)?;
    Ok(first == 8 && second == 8 && buf[..4] == [5, 6, 7, 8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_rule() {
        assert!(may_join(1200, 1, 1200, 1200));
        assert!(
            may_join(1200, 1, 1200, 300),
            "a shorter one may end the message"
        );
        assert!(!may_join(1200, 1, 1200, 1201));
        assert!(
            !may_join(1500, 1, 1500, 1500),
            "over the MTU-safe segment size"
        );
        assert!(!may_join(100, MAX_SEGMENTS, 6400, 100));
        assert!(!may_join(1000, 60, 65_000, 1000));
        assert!(!may_join(0, 1, 0, 0));
        assert!(gso_available(), "loopback takes UDP GSO on Linux >= 4.18");
    }
}
