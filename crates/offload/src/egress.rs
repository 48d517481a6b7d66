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
    /// Whether the output interface is a veth (its driver, [`crate::driver`]).
    pub veth: bool,
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
        veth: is_veth(ifindex),
    })
}

fn is_veth(ifindex: u32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` is a writable buffer of IF_NAMESIZE bytes, as if_indextoname needs.
    let found = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
    if found.is_null() {
        return false;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `name`.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    name.to_str()
        .ok()
        .and_then(crate::driver)
        .is_some_and(|d| d == "veth")
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
    finish(buf, RTM_GETROUTE, seq)
}

/// The one message of a netlink answer: its kind and its bytes (header included), or
/// the error it carries.
fn answer(msg: &[u8]) -> io::Result<(u16, &[u8])> {
    let len = u32_at(msg, 0).ok_or_else(malformed)? as usize;
    let kind = u16_at(msg, 4).ok_or_else(malformed)?;
    let msg = msg.get(..len).ok_or_else(malformed)?;
    if kind == NLMSG_ERROR {
        let errno = i32::from_ne_bytes(
            msg.get(16..20)
                .ok_or_else(malformed)?
                .try_into()
                .map_err(|_| malformed())?,
        );
        // Error 0 is the acknowledgement of a request that asked for one.
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(-errno));
        }
    }
    Ok((kind, msg))
}

/// The attributes (kind, value) of `msg` after its netlink header and the `fixed`
/// bytes of its family's header.
fn attributes(msg: &[u8], fixed: usize) -> io::Result<Vec<(u16, &[u8])>> {
    let mut found = Vec::new();
    let mut at = NLMSG_HDR + fixed;
    while at + 4 <= msg.len() {
        let alen = usize::from(u16_at(msg, at).ok_or_else(malformed)?);
        let akind = u16_at(msg, at + 2).ok_or_else(malformed)?;
        if alen < 4 {
            return Err(malformed());
        }
        found.push((akind, msg.get(at + 4..at + alen).ok_or_else(malformed)?));
        at += alen.next_multiple_of(4);
    }
    Ok(found)
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed netlink answer")
}

fn u16_at(msg: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(msg.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(msg: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(msg.get(i..i + 4)?.try_into().ok()?))
}

fn ip_of(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The `RTA_OIF`, `RTA_PREFSRC` and `RTA_GATEWAY` of an `RTM_NEWROUTE` answer, or the
/// error it carries.
fn parse_answer(msg: &[u8]) -> io::Result<(u32, Option<IpAddr>, Option<IpAddr>)> {
    let (kind, msg) = answer(msg)?;
    if kind != RTM_NEWROUTE {
        return Err(malformed());
    }
    let (mut oif, mut source, mut gateway) = (None, None, None);
    for (kind, value) in attributes(msg, RTMSG)? {
        match kind {
            RTA_OIF => oif = Some(u32_at(value, 0).ok_or_else(malformed)?),
            RTA_PREFSRC => source = ip_of(value),
            RTA_GATEWAY => gateway = ip_of(value),
            _ => {}
        }
    }
    let oif = oif.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "route without an output interface")
    })?;
    Ok((oif, source, gateway))
}

/// The Ethernet addresses of one hop: what the XDP program writes in front of a
/// datagram it sends to a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHop {
    /// The next hop's address, from the kernel's neighbour table.
    pub dst: [u8; 6],
    /// The output interface's own address.
    pub src: [u8; 6],
    /// Whether the entry is confirmed or being confirmed (REACHABLE, DELAY, PROBE,
    /// PERMANENT, NOARP); a STALE one still names the address, but nothing checks it
    /// until [`use_neighbour`].
    pub fresh: bool,
}

/// The Ethernet addresses for sending to `next_hop` out of interface `ifindex`, as
/// `ip neigh get NEXT_HOP dev IF` and `ip link show IF` tell them; `None` when the
/// interface is not Ethernet or the kernel has no resolved entry for the neighbour (it
/// resolves one when something is sent there; stale entries still name the address).
///
/// # Errors
///
/// The interface does not exist, or the netlink socket failed.
pub fn ethernet_hop(ifindex: u32, next_hop: IpAddr) -> io::Result<Option<EthernetHop>> {
    let Some(src) = parse_link(&exchange(&link_request(ifindex, 2))?)? else {
        return Ok(None);
    };
    match exchange(&neigh_request(ifindex, next_hop, 3)).and_then(|m| parse_neigh(&m)) {
        Ok(Some((dst, state))) => Ok(Some(EthernetHop {
            dst,
            src,
            fresh: state & NUD_FRESH != 0,
        })),
        Ok(None) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const IFLA_ADDRESS: u16 = 1;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// `struct ifinfomsg` and `struct ndmsg`.
const IFINFOMSG: usize = 16;
const NDMSG: usize = 12;
const ARPHRD_ETHER: u16 = 1;
/// Neighbour states whose entry holds a usable link-layer address: REACHABLE, STALE,
/// DELAY, PROBE, NOARP, PERMANENT (`include/uapi/linux/neighbour.h`).
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// Those of them but STALE.
const NUD_FRESH: u16 = NUD_VALID & !0x04;
/// `NUD_PERMANENT`, the state `ip neigh replace ... use` sends (ignored with `NTF_USE`).
const NUD_PERMANENT: u16 = 0x80;
/// `NTF_USE`: treat the entry as used by a send, resolving or re-confirming it.
const NTF_USE: u8 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;

/// Fills in the netlink header of `buf` (whose first `NLMSG_HDR` bytes are reserved).
fn finish(mut buf: Vec<u8>, kind: u16, seq: u32) -> Vec<u8> {
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf[4..6].copy_from_slice(&kind.to_ne_bytes());
    buf[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    buf
}

/// `RTM_GETLINK` for interface `ifindex`.
fn link_request(ifindex: u32, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; NLMSG_HDR + IFINFOMSG];
    // struct ifinfomsg: family, pad, type, index, flags, change.
    buf[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&ifindex.to_ne_bytes());
    finish(buf, RTM_GETLINK, seq)
}

/// An `RTM_NEWLINK` answer's Ethernet address; `None` for other link types.
fn parse_link(msg: &[u8]) -> io::Result<Option<[u8; 6]>> {
    let (kind, msg) = answer(msg)?;
    if kind != RTM_NEWLINK {
        return Err(malformed());
    }
    if u16_at(msg, NLMSG_HDR + 2).ok_or_else(malformed)? != ARPHRD_ETHER {
        return Ok(None);
    }
    Ok(attributes(msg, IFINFOMSG)?
        .into_iter()
        .find(|&(kind, _)| kind == IFLA_ADDRESS)
        .and_then(|(_, value)| <[u8; 6]>::try_from(value).ok()))
}

/// `RTM_GETNEIGH` for one neighbour (kernel ≥ 4.19): `ip neigh get ADDR dev IF`.
fn neigh_request(ifindex: u32, ip: IpAddr, seq: u32) -> Vec<u8> {
    let ip = ip.to_canonical();
    let family = if ip.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    };
    let mut buf = vec![0u8; NLMSG_HDR + NDMSG];
    // struct ndmsg: family, pad1, pad2, ifindex, state, flags, type.
    buf[NLMSG_HDR] = family;
    buf[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&ifindex.to_ne_bytes());
    push_attr(&mut buf, NDA_DST, &octets(ip));
    finish(buf, RTM_GETNEIGH, seq)
}

/// An `RTM_NEWNEIGH` answer's link-layer address and state, if the state says the
/// address is usable.
fn parse_neigh(msg: &[u8]) -> io::Result<Option<([u8; 6], u16)>> {
    let (kind, msg) = answer(msg)?;
    if kind != RTM_NEWNEIGH {
        return Err(malformed());
    }
    let state = u16_at(msg, NLMSG_HDR + 8).ok_or_else(malformed)?;
    if state & NUD_VALID == 0 {
        return Ok(None);
    }
    Ok(attributes(msg, NDMSG)?
        .into_iter()
        .find(|&(kind, _)| kind == NDA_LLADDR)
        .and_then(|(_, value)| <[u8; 6]>::try_from(value).ok())
        .map(|lladdr| (lladdr, state)))
}

/// Asks the kernel to resolve `next_hop` on interface `ifindex`, or to confirm a stale
/// entry, as if a datagram were being sent there (`ip neigh replace ADDR dev IF use`):
/// an ARP request or IPv6 Neighbour Solicitation, never a datagram to the host itself.
/// XDP's sends bypass the neighbour table, so nothing else keeps it fresh.
///
/// # Errors
///
/// The kernel refused (no such interface, say) or the netlink socket failed.
pub fn use_neighbour(ifindex: u32, next_hop: IpAddr) -> io::Result<()> {
    let mut req = neigh_request(ifindex, next_hop, 4);
    req[NLMSG_HDR + 8..NLMSG_HDR + 10].copy_from_slice(&NUD_PERMANENT.to_ne_bytes());
    req[NLMSG_HDR + 10] = NTF_USE;
    req[4..6].copy_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    answer(&exchange(&req)?).map(drop)
}

fn route_oif(src: IpAddr, dst: IpAddr) -> io::Result<(u32, Option<IpAddr>, Option<IpAddr>)> {
    parse_answer(&exchange(&request(src, dst, 1))?)
}

/// Sends one netlink request to the kernel and returns its one answer.
fn exchange(req: &[u8]) -> io::Result<Vec<u8>> {
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
    buf.truncate(n as usize);
    Ok(buf)
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
            assert!(parse_link(&msg).is_err());
            assert!(parse_neigh(&msg).is_err());
        }
    }

    #[test]
    fn loopback_is_not_ethernet() {
        // SAFETY: a valid NUL-terminated name.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        let hop = ethernet_hop(lo, "127.0.0.1".parse().unwrap()).expect("lo exists");
        assert_eq!(hop, None);
        assert!(ethernet_hop(u32::MAX - 7, "127.0.0.1".parse().unwrap()).is_err());
    }
}
