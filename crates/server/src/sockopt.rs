//! Socket options socket2 does not expose. `unsafe` in the server lives here, in `icmp.rs`
//! (reading the error queue) and in `batch.rs` (recvmmsg), each block with its `SAFETY:`
//! argument.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

/// Sets or clears the Don't Fragment bit on datagrams sent from `socket` (RFC 8656 §18.9,
/// DONT-FRAGMENT): `IP_MTU_DISCOVER` = `IP_PMTUDISC_DO` / `IP_PMTUDISC_DONT` for IPv4,
/// `IPV6_DONTFRAG` for IPv6.
pub(crate) fn set_dont_fragment(socket: &impl AsRawFd, ipv6: bool, on: bool) -> io::Result<()> {
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

/// Raises the soft limit on open descriptors to the hard limit (each allocation holds one
/// or two sockets) and answers the limit now in force.
pub(crate) fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit the kernel writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a live rlimit the kernel reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// `setsockopt` of one `c_int` value.
pub(crate) fn set_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int on the stack and the length passed is its size; the
    // descriptor belongs to `socket`, which outlives the call. setsockopt reads only
    // `size_of::<c_int>()` bytes from the pointer.
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

/// Reads the Don't Fragment setting back (for tests).
/// Reads and clears the socket's pending error (`SO_ERROR`).
pub(crate) fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` bytes to
    // `value` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}

/// The address in a `sockaddr_storage` of which the kernel filled `len` bytes.
pub(crate) fn socket_addr(storage: &libc::sockaddr_storage, len: usize) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: sockaddr_storage is large and aligned enough for every sockaddr type,
            // the family says the kernel wrote a sockaddr_in, and all its fields are plain
            // integers.
            let sin = unsafe { (&raw const *storage).cast::<libc::sockaddr_in>().read() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { (&raw const *storage).cast::<libc::sockaddr_in6>().read() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) fn dont_fragment(socket: &impl AsRawFd, ipv6: bool) -> io::Result<bool> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
    };
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if ipv6 {
        value != 0
    } else {
        value == libc::IP_PMTUDISC_DO
    })
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
}
