//! The address encoding shared by MAPPED-ADDRESS, XOR-MAPPED-ADDRESS and the TURN address
//! attributes (RFC 8489 §14.1, §14.2).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::header::{MAGIC_COOKIE, TransactionId};

/// An address family number as used in address attributes and REQUESTED-ADDRESS-FAMILY.
///
/// Any value can be carried so that a server can answer an unsupported family with 440
/// (RFC 8656 §7.2) rather than refusing to parse it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AddressFamily(pub u8);

impl AddressFamily {
    /// IPv4, 0x01.
    pub const IPV4: Self = Self(0x01);
    /// IPv6, 0x02.
    pub const IPV6: Self = Self(0x02);

    /// The family of an IP address.
    pub const fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::IPV4,
            IpAddr::V6(_) => Self::IPV6,
        }
    }
}

/// Decodes the common address layout: reserved byte, family, port, then 4 or 16 address
/// bytes. Returns `None` on a wrong length or an unknown family.
pub fn decode_address(value: &[u8]) -> Option<SocketAddr> {
    match value {
        [_, 0x01, p0, p1, a @ ..] if a.len() == 4 => {
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([*p0, *p1])))
        }
        [_, 0x02, p0, p1, a @ ..] => {
            let octets: [u8; 16] = a.try_into().ok()?;
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([*p0, *p1])))
        }
        _ => None,
    }
}

/// Writes the common address layout into `out` (8 bytes for IPv4, 20 for IPv6).
pub fn encode_address(addr: SocketAddr, out: &mut [u8]) {
    out[0] = 0;
    out[2..4].copy_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = 0x01;
            out[4..8].copy_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out[1] = 0x02;
            out[4..20].copy_from_slice(&ip.octets());
        }
    }
}

/// XORs an address with the magic cookie (and, for IPv6, the transaction ID). The
/// operation is its own inverse (RFC 8489 §14.2).
pub fn xor_address(addr: SocketAddr, tid: &TransactionId) -> SocketAddr {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let ip: IpAddr = match addr.ip() {
        IpAddr::V4(ip) => {
            let mut o = ip.octets();
            for (b, c) in o.iter_mut().zip(cookie) {
                *b ^= c;
            }
            Ipv4Addr::from(o).into()
        }
        IpAddr::V6(ip) => {
            let mut o = ip.octets();
            for (b, c) in o.iter_mut().zip(cookie.iter().chain(tid.as_bytes())) {
                *b ^= c;
            }
            Ipv6Addr::from(o).into()
        }
    };
    SocketAddr::new(ip, port)
}
