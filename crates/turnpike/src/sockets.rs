//! Who holds a local port: the sockets in `/proc/net/{udp,udp6,tcp,tcp6}` and, when
//! `/proc/<pid>/fd` can be read (same user, or root), the process that owns the socket.
//! Only for messages ("in use by pid 812, coturn"); whether a port is busy is decided by
//! a probe bind ([`turnpike_server::busy`]), never by this.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use turnpike_server::Transport;

/// The holder of a socket, as far as `/proc` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The owning process and its command name, when visible.
    pub(crate) process: Option<(u32, String)>,
    /// The socket's user id.
    pub(crate) uid: u32,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.process {
            Some((pid, name)) => write!(f, "pid {pid}, {name}"),
            None => write!(f, "a process of uid {}", self.uid),
        }
    }
}

/// One line of `/proc/net/udp*` or `/proc/net/tcp*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    local: SocketAddr,
    /// The TCP state (0x0A is LISTEN), or the UDP one.
    state: u8,
    uid: u32,
    inode: u64,
}

/// The holder of a socket bound to an address overlapping `address` (same port, same
/// family, equal addresses or either unspecified; a TCP one listening).
pub(crate) fn holder(transport: Transport, address: SocketAddr) -> Option<Holder> {
    let files: &[&str] = match transport {
        Transport::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        Transport::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let entry = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_line)
                .collect::<Vec<_>>()
        })
        .find(|e| overlaps(e.local, address) && (transport == Transport::Udp || e.state == 0x0A))?;
    Some(Holder {
        process: owner_of_inode(entry.inode),
        uid: entry.uid,
    })
}

/// Whether a bound socket at `held` overlaps `wanted`.
fn overlaps(held: SocketAddr, wanted: SocketAddr) -> bool {
    let (a, b) = (normalise(held.ip()), normalise(wanted.ip()));
    held.port() == wanted.port()
        && (a == b
            || (a.is_unspecified() && (a.is_ipv4() == b.is_ipv4() || held.is_ipv6()))
            || (b.is_unspecified() && a.is_ipv4() == b.is_ipv4()))
}

/// An IPv4-mapped IPv6 address as IPv4.
fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses `sl local rem st queues tr retrnsmt uid timeout inode ...`.
fn parse_line(line: &str) -> Option<Entry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints each 32-bit word of the address as a number in host order.
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(Entry {
        local: SocketAddr::new(ip, port),
        state: u8::from_str_radix(fields.get(3)?, 16).ok()?,
        uid: fields.get(7)?.parse().ok()?,
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// The process with a descriptor on socket `inode`, and its command name.
fn owner_of_inode(inode: u64) -> Option<(u32, String)> {
    let want = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == want.as_str())
        });
        if holds {
            let name = std::fs::read_to_string(proc_entry.path().join("comm"))
                .map_or_else(|_| "?".to_owned(), |n| n.trim().to_owned());
            return Some((pid, name));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_families() {
        let v4 = "   0: 0100007F:0D96 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4242 2 0000000000000000 0";
        let e = parse_line(v4).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(e.local, "127.0.0.1:3478".parse().unwrap());
        }
        assert_eq!((e.state, e.uid, e.inode), (7, 1000, 4242));
        let v6 = "   1: 00000000000000000000000001000000:0D96 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1";
        let e = parse_line(v6).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(e.local, "[::1]:3478".parse().unwrap());
        }
        assert_eq!(e.state, 0x0A);
    }

    #[test]
    fn this_process_is_found_holding_its_socket() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let found = holder(Transport::Udp, addr).expect("in /proc/net/udp");
        assert_eq!(found.process.map(|p| p.0), Some(std::process::id()));
        let wildcard = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
        assert!(holder(Transport::Udp, wildcard).is_some());
    }
}
