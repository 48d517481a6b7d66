//! ICMP errors caused by datagrams a relay socket sent to a peer (RFC 8656 §11), read from
//! the Linux socket error queue.
//!
//! With `IP_RECVERR` / `IPV6_RECVERR` on ([`enable_recverr`]), the kernel keeps every ICMP
//! error that matches a datagram the socket sent — port or host unreachable, fragmentation
//! needed / packet too big, time exceeded — on the socket's error queue, with the
//! datagram's original destination (the peer) and the ICMP type, code and MTU.
//! [`read_error`] takes one entry off that queue (`recvmsg(.., MSG_ERRQUEUE)`) and parses
//! its `sock_extended_err` control message. Without the option an unconnected UDP socket
//! drops ICMP errors silently.
//!
//! Only errors of ICMP origin (`SO_EE_ORIGIN_ICMP` / `SO_EE_ORIGIN_ICMP6`) are returned.
//! Other entries — notably `SO_EE_ORIGIN_LOCAL` ones, such as the `EMSGSIZE` queued when a
//! send with DF set exceeds the known path MTU, which the failing send reports anyway — are
//! consumed and skipped, so calling [`read_error`] until it answers `Ok(None)` always
//! empties the queue.
//!
//! # What the option does to the socket (Linux; each point is checked by a test below)
//!
//! - An ICMP error sets the socket's pending error (`SO_ERROR`: `ECONNREFUSED` for port
//!   unreachable, `EHOSTUNREACH`, `EMSGSIZE` for fragmentation needed, …) *and* queues an
//!   entry. Taking the last ICMP entry off the queue clears the pending error; taking one
//!   of several re-arms it with the next entry's errno. The socket polls `EPOLLERR` while
//!   either is there.
//! - Until then, the next `recv_from` **and the next `send_to`** fail with the pending
//!   error, once, instead of doing their work. A datagram already received stays queued for
//!   the following `recv_from`; the datagram being sent is **not sent**.
//! - tokio's `UdpSocket::recv_from` waits for `READABLE | ERROR` (tokio ≥ 1.51.1; older
//!   versions wait for `READABLE` only and would see the error only when the next datagram
//!   arrives), so a task parked in it wakes on the ICMP error and gets it as `Err`.
//! - Local (non-ICMP) entries set no pending error, so no call fails for them, but they stay
//!   queued — charged against the socket's receive buffer — until someone reads the queue.
//!
//! So the runtime should drain the queue whenever a call on the socket fails:
//!
//! ```text
//! relay loop:  match socket.recv_from(buf).await {
//!                  Ok((n, from)) => a datagram from a peer,
//!                  Err(_) => while let Ok(Some(e)) = icmp::read_error(&*socket) { report e },
//!              }
//! send path:   match socket.try_send_to(payload, peer) {
//!                  Err(e) if e.kind() != WouldBlock => drain the queue as above (this also
//!                      clears local EMSGSIZE entries), then try_send_to once more: the first
//!                      failure may have been a stale ICMP error from another peer,
//!                  _ => {}
//!              }
//! ```

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// ICMPv4 Destination Unreachable.
const ICMP_DEST_UNREACH: u8 = 3;
/// ICMPv4 Destination Unreachable code: fragmentation needed and DF set.
const ICMP_FRAG_NEEDED: u8 = 4;
/// ICMPv6 Packet Too Big.
const ICMP6_PACKET_TOO_BIG: u8 = 2;

/// Room for the control messages of one error-queue entry: the `sock_extended_err` and the
/// offender address after it (`CMSG_SPACE(16 + 28)` = 64 bytes), plus any `IP_PKTINFO`,
/// `IP_TTL`, … messages other socket options may add.
const CONTROL_LEN: usize = 256;

/// A control buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuf([u8; CONTROL_LEN]);

/// An ICMP error the kernel reported for a datagram sent from a relay socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// The original datagram's destination: the peer the relay sent to.
    pub peer: SocketAddr,
    /// The ICMP (or ICMPv6, see `ipv6`) type.
    pub icmp_type: u8,
    /// The ICMP code.
    pub icmp_code: u8,
    /// The next-hop MTU for ICMPv4 fragmentation needed (type 3 code 4) and ICMPv6 packet
    /// too big (type 2); 0 for every other error, as the ICMP attribute's Error Data wants
    /// (RFC 8656 §18.13).
    pub info: u32,
    /// Whether the error is ICMPv6 (type and code are ICMPv6 ones).
    pub ipv6: bool,
}

/// Turns on `IP_RECVERR` (IPv4) or `IPV6_RECVERR` (IPv6) so that ICMP errors for datagrams
/// the socket sends are queued for [`read_error`]. Read the module docs for what this does
/// to `recv_from` and `send_to`.
pub fn enable_recverr(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    crate::sockopt::set_int(socket, level, name, 1)
}

/// Reads one queued ICMP error without blocking; `Ok(None)` when the queue is empty.
///
/// Entries of other origins are consumed and skipped (see the module docs), so a loop
/// until `Ok(None)` empties the queue.
pub fn read_error(socket: &impl AsRawFd) -> io::Result<Option<IcmpError>> {
    let fd = socket.as_raw_fd();
    loop {
        match recv_entry(fd) {
            Ok(Entry::Empty) => return Ok(None),
            Ok(Entry::Icmp(error)) => return Ok(Some(error)),
            Ok(Entry::Other) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One entry taken off the error queue.
enum Entry {
    /// The queue was empty.
    Empty,
    /// An ICMP error.
    Icmp(IcmpError),
    /// An entry of another origin, or one that could not be parsed; it is gone.
    Other,
}

/// Takes one entry off the error queue of `fd`.
fn recv_entry(fd: RawFd) -> io::Result<Entry> {
    let mut name = crate::addr::zeroed_storage();
    let mut control = ControlBuf([0; CONTROL_LEN]);
    // SAFETY: msghdr is plain old data (pointers and integers, plus private padding on some
    // libcs); all zeroes — null pointers, zero lengths — is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut name).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // No iovec: the offending datagram's payload is not wanted (the kernel truncates it
    // and sets MSG_TRUNC).
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL_LEN as _;

    // SAFETY: `msg` points at `name` and `control`, live locals whose sizes are the lengths
    // given in `msg`; the kernel writes at most those many bytes to each and updates
    // `msg_namelen` / `msg_controllen` to what it wrote. MSG_DONTWAIT: never blocks.
    let rc = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::WouldBlock {
            Ok(Entry::Empty)
        } else {
            Err(error)
        };
    }

    let Some(ee) = extended_err(&msg, &control) else {
        return Ok(Entry::Other);
    };
    let ipv6 = match ee.ee_origin {
        libc::SO_EE_ORIGIN_ICMP => false,
        libc::SO_EE_ORIGIN_ICMP6 => true,
        _ => return Ok(Entry::Other),
    };
    let namelen = (msg.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
    let Some(peer) = crate::addr::socket_addr(&name, namelen) else {
        return Ok(Entry::Other);
    };
    let carries_mtu = if ipv6 {
        ee.ee_type == ICMP6_PACKET_TOO_BIG
    } else {
        ee.ee_type == ICMP_DEST_UNREACH && ee.ee_code == ICMP_FRAG_NEEDED
    };
    Ok(Entry::Icmp(IcmpError {
        peer,
        icmp_type: ee.ee_type,
        icmp_code: ee.ee_code,
        info: if carries_mtu { ee.ee_info } else { 0 },
        ipv6,
    }))
}

/// Finds the `IP_RECVERR` / `IPV6_RECVERR` control message that `recvmsg` left in
/// `control` (described by `msg`) and copies its `sock_extended_err` out.
fn extended_err(msg: &libc::msghdr, control: &ControlBuf) -> Option<libc::sock_extended_err> {
    #[allow(
        clippy::unnecessary_cast,
        reason = "size_t on glibc, socklen_t on musl"
    )]
    let filled = msg.msg_controllen as usize;
    crate::cmsg::messages(&control.0, filled)
        .find(|m| {
            (m.level == libc::SOL_IP && m.kind == libc::IP_RECVERR)
                || (m.level == libc::SOL_IPV6 && m.kind == libc::IPV6_RECVERR)
        })?
        .read()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
    use std::time::{Duration, Instant};

    use socket2::{Domain, Protocol, Socket, Type};

    /// A port on `ip` that nothing listens on: bound, then released.
    fn closed_port(ip: &str) -> SocketAddr {
        let s = UdpSocket::bind((ip, 0)).unwrap();
        s.local_addr().unwrap()
    }

    /// Polls the error queue for up to a second.
    fn wait_error(socket: &impl AsRawFd) -> IcmpError {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(e) = read_error(socket).unwrap() {
                return e;
            }
            assert!(Instant::now() < deadline, "no ICMP error within 1 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the socket polls POLLERR (pending error or non-empty error queue).
    fn polls_err(socket: &impl std::os::fd::AsFd) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(socket, PollFlags::empty())];
        poll(&mut fds, Some(&Timespec::default())).unwrap();
        fds[0].revents().contains(PollFlags::ERR)
    }

    fn set_int(socket: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
        crate::sockopt::set_int(socket, level, name, value).expect("setsockopt");
    }

    #[test]
    fn icmp_v4_port_unreachable() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_recverr(&s, false).unwrap();
        let peer = closed_port("127.0.0.1");
        s.send_to(b"hello", peer).unwrap();
        let e = wait_error(&s);
        assert_eq!(
            e,
            IcmpError {
                peer,
                icmp_type: 3,
                icmp_code: 3,
                info: 0,
                ipv6: false
            }
        );
        assert!(read_error(&s).unwrap().is_none());
        assert!(!polls_err(&s));
    }

    #[test]
    fn icmp_v6_port_unreachable() {
        let Ok(s) = UdpSocket::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback; skipped");
            return;
        };
        enable_recverr(&s, true).unwrap();
        let peer = closed_port("::1");
        s.send_to(b"hello", peer).unwrap();
        let e = wait_error(&s);
        assert_eq!(
            e,
            IcmpError {
                peer,
                icmp_type: 1,
                icmp_code: 4,
                info: 0,
                ipv6: true
            }
        );
        assert!(read_error(&s).unwrap().is_none());
        assert!(!polls_err(&s));
    }

    #[test]
    fn icmp_empty_queue_is_none() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        assert!(read_error(&s).unwrap().is_none());
        enable_recverr(&s, false).unwrap();
        assert!(read_error(&s).unwrap().is_none());
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn icmp_without_recverr_nothing_is_queued() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(b"hello", closed_port("127.0.0.1")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(read_error(&s).unwrap().is_none());
        assert!(s.take_error().unwrap().is_none());
    }

    /// A pending ICMP error fails the socket's next send, and that datagram is not sent.
    /// Draining the queue clears the pending error.
    #[test]
    fn icmp_pending_error_fails_next_send() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_recverr(&s, false).unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];

        let peer = closed_port("127.0.0.1");
        s.send_to(b"x", peer).unwrap();
        // Loopback answers within the send; give a slower path a moment anyway.
        std::thread::sleep(Duration::from_millis(20));
        let sent = s.send_to(b"lost", sink.local_addr().unwrap());
        assert_eq!(
            sent.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionRefused)
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            sink.recv_from(&mut buf).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "the failed send went out"
        );
        // The failed send consumed the pending error, not the queue entry.
        assert_eq!(wait_error(&s).peer, peer);

        // Drained first: the send goes through.
        s.send_to(b"y", peer).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        while read_error(&s).unwrap().is_some() {}
        s.send_to(b"kept", sink.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (n, _) = sink.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"kept");
    }

    /// Entries queue up in order; `SO_ERROR` (take_error) clears the pending error without
    /// touching the queue.
    #[test]
    fn icmp_several_errors_queue_in_order() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_recverr(&s, false).unwrap();
        let peers = [closed_port("127.0.0.1"), closed_port("127.0.0.1")];
        for peer in peers {
            s.send_to(b"x", peer).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let pending = s.take_error().unwrap().map(|e| e.kind());
            assert_eq!(pending, Some(io::ErrorKind::ConnectionRefused));
        }
        let first = wait_error(&s);
        // Taking one of two entries re-arms the pending error with the next one's errno.
        let pending = s.take_error().unwrap().map(|e| e.kind());
        assert_eq!(pending, Some(io::ErrorKind::ConnectionRefused));
        let second = wait_error(&s);
        assert_eq!([first.peer, second.peer], peers);
        assert!(read_error(&s).unwrap().is_none());
        assert!(s.take_error().unwrap().is_none());
    }

    /// A local EMSGSIZE (DF, datagram over the route MTU) is queued with origin LOCAL;
    /// `read_error` skips it and still empties the queue. IPv6 because on IPv4 loopback's
    /// 65536-byte MTU exceeds any datagram.
    #[test]
    fn icmp_local_errors_are_skipped() {
        let Ok(s) = UdpSocket::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback; skipped");
            return;
        };
        enable_recverr(&s, true).unwrap();
        set_int(
            &s,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        );
        let sink = UdpSocket::bind("[::1]:0").unwrap();
        // 65527 + 8 (UDP) + 40 (IPv6) > 65536.
        let sent = s.send_to(&vec![0u8; 65_527], sink.local_addr().unwrap());
        assert_eq!(
            sent.map_err(|e| e.raw_os_error()),
            Err(Some(libc::EMSGSIZE))
        );
        assert!(polls_err(&s), "no local error queued");
        assert!(read_error(&s).unwrap().is_none());
        assert!(!polls_err(&s), "queue not emptied");
    }

    /// The internet checksum.
    fn checksum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// ICMPv4 fragmentation needed, forged through a raw socket (needs CAP_NET_RAW):
    /// the MTU comes back as `info`. The reported MTU, 65535, is above any IPv4 datagram,
    /// so the route exception it leaves behind for 127.0.0.2 changes nothing.
    #[test]
    fn icmp_v4_frag_needed_carries_mtu() {
        let Ok(raw) = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) else {
            eprintln!("no raw socket; skipped");
            return;
        };
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_recverr(&s, false).unwrap();
        set_int(
            &s,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        );
        let SocketAddr::V4(local) = s.local_addr().unwrap() else {
            unreachable!()
        };
        let peer = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 9);
        let mtu: u16 = 65_535;

        let mut packet = vec![3, 4, 0, 0, 0, 0];
        packet.extend_from_slice(&mtu.to_be_bytes());
        // The datagram that "did not fit": IPv4 header with DF, then its UDP header.
        packet.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        packet.extend_from_slice(&local.ip().octets());
        packet.extend_from_slice(&peer.ip().octets());
        packet.extend_from_slice(&local.port().to_be_bytes());
        packet.extend_from_slice(&peer.port().to_be_bytes());
        packet.extend_from_slice(&[0, 8, 0, 0]);
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        let to = SocketAddr::from(([127, 0, 0, 1], 0));
        raw.send_to(&packet, &to.into()).unwrap();

        let e = wait_error(&s);
        assert_eq!(
            e,
            IcmpError {
                peer: SocketAddr::V4(peer),
                icmp_type: 3,
                icmp_code: 4,
                info: u32::from(mtu),
                ipv6: false
            }
        );
        assert_eq!(
            s.take_error().unwrap().and_then(|e| e.raw_os_error()),
            None,
            "draining the queue clears the pending error"
        );
    }

    /// ICMPv6 packet too big, forged through a raw socket (needs CAP_NET_RAW): the MTU
    /// comes back as `info`. It is above loopback's, so no route changes.
    #[test]
    fn icmp_v6_packet_too_big_carries_mtu() {
        let Ok(raw) = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)) else {
            eprintln!("no raw socket; skipped");
            return;
        };
        let Ok(s) = UdpSocket::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback; skipped");
            return;
        };
        enable_recverr(&s, true).unwrap();
        let SocketAddr::V6(local) = s.local_addr().unwrap() else {
            unreachable!()
        };
        let peer = closed_port("::1");
        let SocketAddr::V6(peer6) = peer else {
            unreachable!()
        };
        let mtu: u32 = 70_000;

        // The kernel fills in the ICMPv6 checksum.
        let mut packet = vec![2, 0, 0, 0];
        packet.extend_from_slice(&mtu.to_be_bytes());
        packet.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        packet.extend_from_slice(&local.ip().octets());
        packet.extend_from_slice(&peer6.ip().octets());
        packet.extend_from_slice(&local.port().to_be_bytes());
        packet.extend_from_slice(&peer6.port().to_be_bytes());
        packet.extend_from_slice(&[0, 8, 0, 0]);
        let to = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
        raw.send_to(&packet, &to.into()).unwrap();

        let e = wait_error(&s);
        assert_eq!(
            e,
            IcmpError {
                peer,
                icmp_type: 2,
                icmp_code: 0,
                info: mtu,
                ipv6: true
            }
        );
    }

    /// With IP_RECVERR on, what a tokio `UdpSocket` sees of an ICMP error.
    #[tokio::test(flavor = "current_thread")]
    async fn icmp_tokio_recv_from_reports_then_queue_drains() {
        let std = UdpSocket::bind("127.0.0.1:0").unwrap();
        std.set_nonblocking(true).unwrap();
        enable_recverr(&std, false).unwrap();
        let socket = std::sync::Arc::new(tokio::net::UdpSocket::from_std(std).unwrap());
        let local = socket.local_addr().unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = closed_port("127.0.0.1");
        let within = Duration::from_secs(1);
        let mut buf = [0u8; 64];

        // 1. A task parked in recv_from is woken by the error alone (no datagram arrives)
        //    and gets it as an error; the entry stays queued for read_error.
        let parked = tokio::spawn({
            let socket = std::sync::Arc::clone(&socket);
            async move {
                let mut buf = [0u8; 64];
                socket.recv_from(&mut buf).await.map(|(n, _)| n)
            }
        });
        tokio::task::yield_now().await;
        socket.send_to(b"hello", peer).await.unwrap();
        let received = tokio::time::timeout(within, parked)
            .await
            .expect("recv_from was not woken by the ICMP error")
            .unwrap();
        assert_eq!(
            received.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionRefused)
        );
        let e = read_error(&*socket)
            .unwrap()
            .expect("the entry is still queued");
        assert_eq!((e.peer, e.icmp_type, e.icmp_code), (peer, 3, 3));
        assert!(read_error(&*socket).unwrap().is_none());

        // 2. An error that arrives after a datagram is still reported first; the datagram
        //    waits for the next recv_from.
        other.send_to(b"data", local).unwrap();
        socket.send_to(b"again", peer).await.unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let first = tokio::time::timeout(within, socket.recv_from(&mut buf))
            .await
            .unwrap();
        assert_eq!(
            first.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionRefused)
        );
        while read_error(&*socket).unwrap().is_some() {}
        let (n, from) = tokio::time::timeout(within, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"data"[..], other.local_addr().unwrap())
        );

        // 3. Drained: nothing pending, recv_from waits for real data.
        let idle =
            tokio::time::timeout(Duration::from_millis(50), socket.recv_from(&mut buf)).await;
        assert!(idle.is_err(), "recv_from returned {idle:?}");
        other.send_to(b"clean", local).unwrap();
        let (n, _) = tokio::time::timeout(within, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"clean");
    }
}
