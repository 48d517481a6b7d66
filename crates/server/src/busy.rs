//! Whether a listening address is already taken by another process, although the server
//! binds its own UDP listeners with `SO_REUSEPORT` (one socket per worker).
//!
//! `SO_REUSEPORT` lets any socket of the same user that also sets it share a port: a
//! second turnpike started on the same UDP port would bind without an error and take
//! half the clients. So before binding, the address is *probed*: a socket with neither
//! `SO_REUSEPORT` nor (for UDP) `SO_REUSEADDR` is bound to it and closed at once. Linux
//! refuses that bind with `EADDRINUSE` whenever any socket holds an overlapping address
//! (`0.0.0.0` and a specific IPv4 address overlap both ways; an IPv6 probe is `V6ONLY`,
//! as the server's own listeners are, so it overlaps `[::]`, a specific IPv6 address
//! and any dual-stack socket, and an IPv4 probe overlaps a dual-stack `[::]` too).
//!
//! TCP probes set `SO_REUSEADDR`, as the server's TCP listeners do, so that connections of
//! a previous run left in `TIME_WAIT` do not count as busy; another process's listening
//! socket still does (a listener never shares a port without `SO_REUSEPORT` on both).
//!
//! Residual race: a process that binds the port with `SO_REUSEPORT` (same user) between
//! the probe and the server's own bind, a few microseconds later, shares the port
//! unnoticed, and so does one that joins after the server has bound (the server's sockets
//! must keep `SO_REUSEPORT` for its workers). A second turnpike is not such a process:
//! its own probe fails on the first one's sockets.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::Transport;

/// `EADDRINUSE` on Linux.
const EADDRINUSE: i32 = 98;

/// Probes `address` for `transport`: `Ok(true)` when another socket holds it, `Ok(false)`
/// when it is free (port 0 is always free).
///
/// # Errors
///
/// The probe could not tell: the address is not on the machine (`EADDRNOTAVAIL`), the
/// family is not supported, the port is privileged, and the like; binding for real
/// fails the same way.
pub fn in_use(transport: Transport, address: SocketAddr) -> io::Result<bool> {
    if address.port() == 0 {
        return Ok(false);
    }
    let (ty, protocol) = match transport {
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
    };
    let socket = Socket::new(Domain::for_address(address), ty, Some(protocol))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if transport == Transport::Tcp {
        socket.set_reuse_address(true)?;
    }
    match socket.bind(&address.into()) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(EADDRINUSE) => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reuseport_holder_is_seen_and_a_free_port_is_not() {
        // Any free port: bind, note it, then hold it with SO_REUSEPORT as another
        // turnpike would.
        let holder = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        holder.set_reuse_port(true).unwrap();
        holder
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let held = holder.local_addr().unwrap().as_socket().unwrap();
        assert!(in_use(Transport::Udp, held).unwrap());
        // The wildcard overlaps the specific address.
        let wildcard = SocketAddr::from(([0, 0, 0, 0], held.port()));
        assert!(in_use(Transport::Udp, wildcard).unwrap());
        drop(holder);
        assert!(!in_use(Transport::Udp, held).unwrap());
        assert!(!in_use(Transport::Udp, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap());
    }

    #[test]
    fn a_tcp_listener_is_seen() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let held = listener.local_addr().unwrap();
        assert!(in_use(Transport::Tcp, held).unwrap());
        drop(listener);
        assert!(!in_use(Transport::Tcp, held).unwrap());
    }
}
