//! Socket options neither `std` nor `socket2` offers: Don't Fragment, the pending error,
//! forced buffer sizes, and the options that make the kernel attach control messages to
//! received datagrams (`IP_PKTINFO`, `SO_TIMESTAMPNS`, `SO_RXQ_OVFL`) for a [`RecvBatch`].
//!
//! Integer options go through one `setsockopt`/`getsockopt` pair ([`set_int`], [`int`]);
//! the buffer sizes through `rustix`'s safe wrappers.
//!
//! [`RecvBatch`]: crate::RecvBatch

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

pub use crate::addr::socket_addr;

/// `setsockopt` of one `c_int` value.
pub fn set_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int on the stack and the length passed is its size;
    // setsockopt reads only that many bytes from the pointer. A descriptor that is not
    // open fails with EBADF.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt` of one `c_int` value.
pub fn int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` bytes to
    // `value` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets or clears the Don't Fragment bit on datagrams sent from `socket` (RFC 8656 §18.9,
/// DONT-FRAGMENT): `IP_MTU_DISCOVER` = `IP_PMTUDISC_DO` / `IP_PMTUDISC_DONT` for IPv4,
/// `IPV6_DONTFRAG` for IPv6.
pub fn set_dont_fragment(socket: &impl AsRawFd, ipv6: bool, on: bool) -> io::Result<()> {
    let (level, name, value) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_DONTFRAG,
            libc::c_int::from(on),
        )
    } else {
        let mode = if on {
            libc::IP_PMTUDISC_DO
        } else {
            libc::IP_PMTUDISC_DONT
        };
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)
    };
    set_int(socket, level, name, value)
}

/// Whether Don't Fragment is set on `socket` (as [`set_dont_fragment`] sets it).
pub fn dont_fragment(socket: &impl AsRawFd, ipv6: bool) -> io::Result<bool> {
    Ok(if ipv6 {
        int(socket, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG)? != 0
    } else {
        int(socket, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)? == libc::IP_PMTUDISC_DO
    })
}

/// Reads and clears the socket's pending error (`SO_ERROR`).
pub fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let value = int(&fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}

/// Sets the socket's send and receive buffers to `bytes`, beyond the sysctl maximum when
/// allowed (`SO_*BUFFORCE`, root), else as far as the maximum allows.
pub fn set_buffers(socket: &impl AsFd, bytes: usize) -> io::Result<()> {
    use rustix::net::sockopt;
    if sockopt::set_socket_send_buffer_size_force(socket, bytes).is_err() {
        sockopt::set_socket_send_buffer_size(socket, bytes)?;
    }
    if sockopt::set_socket_recv_buffer_size_force(socket, bytes).is_err() {
        sockopt::set_socket_recv_buffer_size(socket, bytes)?;
    }
    Ok(())
}

/// Asks the kernel to report each received datagram's destination address (`IP_PKTINFO`),
/// which a [`crate::RecvBatch::with_destinations`] returns.
pub fn enable_pktinfo(socket: &impl AsRawFd) -> io::Result<()> {
    set_int(socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
}

/// Asks the kernel to stamp each datagram received on `socket` with its receive time
/// (`SO_TIMESTAMPNS`) and to report the socket's drop count (`SO_RXQ_OVFL`), for a
/// [`crate::RecvBatch::with_rx_info`].
pub fn enable_rx_info(socket: &impl AsRawFd) -> io::Result<()> {
    set_int(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    enable_drop_count(socket)
}

/// Asks the kernel to report `socket`'s drop count (`SO_RXQ_OVFL`) but not receive times
/// (cheaper where the times are not needed), for a [`crate::RecvBatch::with_rx_info`].
pub fn enable_drop_count(socket: &impl AsRawFd) -> io::Result<()> {
    set_int(socket, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dont_fragment_toggles() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        set_dont_fragment(&s, false, true).unwrap();
        assert!(dont_fragment(&s, false).unwrap());
        set_dont_fragment(&s, false, false).unwrap();
        assert!(!dont_fragment(&s, false).unwrap());
        if let Ok(s6) = std::net::UdpSocket::bind("[::1]:0") {
            set_dont_fragment(&s6, true, true).unwrap();
            assert!(dont_fragment(&s6, true).unwrap());
        }
    }

    #[test]
    fn options_set_and_pending_error_reads_clean() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = rustix::net::sockopt::socket_recv_buffer_size(&s).unwrap();
        set_buffers(&s, 4 << 20).unwrap();
        let after = rustix::net::sockopt::socket_recv_buffer_size(&s).unwrap();
        assert!(after >= before, "{after} < {before}");
        enable_pktinfo(&s).unwrap();
        assert_eq!(int(&s, libc::IPPROTO_IP, libc::IP_PKTINFO).unwrap(), 1);
        enable_rx_info(&s).unwrap();
        assert_eq!(int(&s, libc::SOL_SOCKET, libc::SO_RXQ_OVFL).unwrap(), 1);
        assert!(take_error(s.as_raw_fd()).unwrap().is_none());
        assert!(take_error(-1).is_err());
    }
}
