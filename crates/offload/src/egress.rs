//! Where a relayed datagram leaves: the kernel's own route lookup, asked from user space
//! when a route is installed.
//!
//! The program cannot ask the FIB itself on a TURN server: `bpf_fib_lookup` answers
//! only for an interface with forwarding on (`BPF_FIB_LKUP_RET_FWD_DISABLED` otherwise),
//! and a relay is a host, not a router — turning forwarding on would make the machine
//! route what arrives. So user space asks the same question `ip route get DST from SRC`
//! asks (an `RTM_GETROUTE` netlink request), keeps the answer's output interface in the
//! route, and the program hands the datagram to `bpf_redirect_neigh`, which routes it
//! out of that interface and resolves the next hop's link-layer address. The path MTU
//! comes from a UDP socket bound to the source and connected to the destination
//! (`IP_MTU` / `IPV6_MTU`): the route's MTU if it has one, else the interface's.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The way out to one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// The output interface.
    pub ifindex: u32,
    /// The path MTU in bytes (whole IP datagram).
    pub mtu: u32,
    /// The route's preferred source address, if it names one: what a socket bound to a
    /// wildcard address sends from.
    pub source: Option<IpAddr>,
    /// The next hop: the route's gateway, or the destination itself when it is on a link.
    pub next_hop: IpAddr,
}

const NLMSG_ERROR: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 1;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
/// `struct nlmsghdr` and `struct rtmsg`.
const NLMSG_HDR: usize = 16;
const RTMSG: usize = 12;

/// The interface and path MTU for datagrams from `src` to `dst` (`src` unspecified: any
/// source, as for a wildcard listener).
///
/// # Errors
///
/// No route, or the netlink socket failed.
pub fn egress(src: IpAddr, dst: IpAddr) -> io::Result<Egress> {
    let (ifindex, source, gateway) = route_oif(src, dst)?;
    let mtu = path_mtu(src, dst)?;
    let dst = dst.to_canonical();
    // A gateway of the other family (IPv4 routed via an IPv6 next hop, RFC 5549) is left to
    // the kernel's own lookup: the program hands over a next hop of the packet's family.
    let next_hop = gateway
        .filter(|g| g.is_ipv4() == dst.is_ipv4())
        .unwrap_or(dst);
    Ok(Egress {
        ifindex,
        mtu,
        source,
        next_hop,
    })
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The `RTM_GETROUTE` request for `dst` (from `src` unless unspecified).
fn request(src: IpAddr, dst: IpAddr, seq: u32) -> Vec<u8> {
    // IPv4-mapped addresses are IPv4 to the routing table.
    let (src, dst) = (src.to_canonical(), dst.to_canonical());
    let (family, bits) = match dst {
        IpAddr::V4(_) => (libc::AF_INET as u8, 32u8),
        IpAddr::V6(_) => (libc::AF_INET6 as u8, 128u8),
    };
    let with_src = !src.is_unspecified() && src.is_ipv4() == dst.is_ipv4();
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&[0; NLMSG_HDR]);
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    buf.extend_from_slice(&[family, bits, if with_src { bits } else { 0 }, 0, 0, 0, 0, 0]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut buf, RTA_DST, &octets(dst));
    if with_src {
        push_attr(&mut buf, RTA_SRC, &octets(src));
    }
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf[4..6].copy_from_slice(&RTM_GETROUTE.to_ne_bytes());
    buf[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    buf
}

/// The `RTA_OIF`, `RTA_PREFSRC` and `RTA_GATEWAY` of an `RTM_NEWROUTE` answer, or the
/// error it carries.
fn parse_answer(msg: &[u8]) -> io::Result<(u32, Option<IpAddr>, Option<IpAddr>)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed netlink answer");
    let u16_at =
        |i: usize| -> Option<u16> { Some(u16::from_ne_bytes(msg.get(i..i + 2)?.try_into().ok()?)) };
    let u32_at =
        |i: usize| -> Option<u32> { Some(u32::from_ne_bytes(msg.get(i..i + 4)?.try_into().ok()?)) };
    let len = u32_at(0).ok_or_else(bad)? as usize;
    let kind = u16_at(4).ok_or_else(bad)?;
    let msg = msg.get(..len).ok_or_else(bad)?;
    if kind == NLMSG_ERROR {
        let errno = i32::from_ne_bytes(
            msg.get(16..20)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != RTM_NEWROUTE {
        return Err(bad());
    }
    let (mut oif, mut source, mut gateway) = (None, None, None);
    let ip = |value: &[u8]| match value.len() {
        4 => <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
        _ => None,
    };
    let mut at = NLMSG_HDR + RTMSG;
    while at + 4 <= msg.len() {
        let alen = usize::from(u16_at(at).ok_or_else(bad)?);
        let akind = u16_at(at + 2).ok_or_else(bad)?;
        if alen < 4 {
            return Err(bad());
        }
        let value = msg.get(at + 4..at + alen).ok_or_else(bad)?;
        match akind {
            RTA_OIF => oif = Some(u32_at(at + 4).ok_or_else(bad)?),
            RTA_PREFSRC => source = ip(value),
            RTA_GATEWAY => gateway = ip(value),
            _ => {}
        }
        at += alen.next_multiple_of(4);
    }
    let oif = oif.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "route without an output interface")
    })?;
    Ok((oif, source, gateway))
}

fn route_oif(src: IpAddr, dst: IpAddr) -> io::Result<(u32, Option<IpAddr>, Option<IpAddr>)> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor this function owns from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request(src, dst, 1);
    // SAFETY: `req` is a live buffer of `req.len()` bytes; the kernel's netlink socket
    // is the default destination.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_answer(&buf[..n as usize])
}

fn path_mtu(src: IpAddr, dst: IpAddr) -> io::Result<u32> {
    let (src, dst) = (src.to_canonical(), dst.to_canonical());
    let bind = if src.is_ipv4() == dst.is_ipv4() {
        SocketAddr::new(src, 0)
    } else {
        SocketAddr::new(
            if dst.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            },
            0,
        )
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(SocketAddr::new(dst, 9))?;
    let (level, name) = if dst.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_MTU)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    };
    let mtu = turnpike_udp::sockopt::int(&socket, level, name)?;
    Ok(u32::try_from(mtu).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_destination_and_source() {
        let req = request(
            "192.0.2.1".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
            7,
        );
        assert_eq!(req.len(), NLMSG_HDR + RTMSG + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(req[0..4].try_into().unwrap()) as usize,
            req.len()
        );
        assert_eq!(req[NLMSG_HDR], libc::AF_INET as u8);
        assert_eq!(
            &req[NLMSG_HDR + RTMSG + 4..NLMSG_HDR + RTMSG + 8],
            &[198, 51, 100, 7]
        );
        // A wildcard source is left out.
        let any = request(
            "0.0.0.0".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            1,
        );
        assert_eq!(any.len(), NLMSG_HDR + RTMSG + 20);
        assert_eq!(any[NLMSG_HDR], libc::AF_INET6 as u8);
    }

    #[test]
    fn loopback_goes_out_of_lo() {
        let lo = "127.0.0.1".parse().unwrap();
        let e = egress(lo, lo).expect("a route to loopback");
        // SAFETY: a valid NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_eq!(e.ifindex, index);
        assert!(e.mtu >= 1280, "{}", e.mtu);
        // From any address: the route names the source a wildcard socket would use.
        let any = egress("0.0.0.0".parse().unwrap(), lo).expect("a route to loopback");
        assert_eq!(any.source, Some(lo));
        assert_eq!(any.next_hop, lo, "on a link: the destination itself");
    }

    #[test]
    fn a_truncated_answer_is_an_error_not_a_panic() {
        for len in 0..40 {
            let msg = vec![0xFFu8; len];
            assert!(parse_answer(&msg).is_err());
        }
    }
}
