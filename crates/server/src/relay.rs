//! Relay addresses: which local IPs relay sockets bind to, the port range, and the 1:1 NAT
//! mapping from local to advertised addresses.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use turnpike_proto::HashMap;

use socket2::{Domain, Protocol, Socket, Type};

/// A 1:1 NAT mapping: relay sockets bound on `private` are advertised as `public`
/// (as operators behind AWS/GCP NAT need: `external_ip = "PUBLIC/PRIVATE"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct ExternalIp {
    /// The address clients and peers reach.
    pub public: IpAddr,
    /// The local address it maps to; `None` maps every relay IP of the same family.
    pub private: Option<IpAddr>,
}

/// Where relay sockets are bound (`[relay]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "RelaySection")]
pub struct RelayConfig {
    /// Local IPs to bind relay sockets on: at most one IPv4 and one IPv6 is used.
    pub ips: Vec<IpAddr>,
    /// First port of the relay range (inclusive).
    pub min_port: u16,
    /// Last port of the relay range (inclusive).
    pub max_port: u16,
    /// 1:1 NAT mappings.
    pub external: Vec<ExternalIp>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            ips: Vec::new(),
            min_port: 49152,
            max_port: 65535,
            external: Vec::new(),
        }
    }
}

/// `[relay]` as written in the file.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RelaySection {
    ips: Vec<IpAddr>,
    ports: PortRange,
    #[serde(deserialize_with = "one_or_many")]
    external_ip: Vec<ExternalIp>,
}

/// `external_ip` as a list, or as one string: `external_ip = "PUBLIC/PRIVATE"` is how
/// coturn's `external-ip` is written and how operators quote it.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ExternalIp>, D::Error> {
    /// Accepts a string (one mapping) or a sequence of them.
    struct OneOrMany;

    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = Vec<ExternalIp>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("\"PUBLIC/PRIVATE\", \"PUBLIC\", or a list of them")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            ExternalIp::try_from(text.to_owned())
                .map(|one| vec![one])
                .map_err(E::custom)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element()? {
                all.push(one);
            }
            Ok(all)
        }
    }

    d.deserialize_any(OneOrMany)
}

impl Default for RelaySection {
    fn default() -> Self {
        let d = RelayConfig::default();
        Self {
            ips: d.ips,
            ports: PortRange {
                min: d.min_port,
                max: d.max_port,
            },
            external_ip: d.external,
        }
    }
}

impl From<RelaySection> for RelayConfig {
    fn from(s: RelaySection) -> Self {
        Self {
            ips: s.ips,
            min_port: s.ports.min,
            max_port: s.ports.max,
            external: s.external_ip,
        }
    }
}

/// A relay port range, written `"MIN-MAX"` with 1024 <= MIN < MAX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
struct PortRange {
    min: u16,
    max: u16,
}

impl TryFrom<String> for PortRange {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .filter(|(a, b)| *a >= 1024 && a < b)
            .map(|(min, max)| Self { min, max })
            .ok_or_else(|| {
                format!("ports must be \"MIN-MAX\" with 1024 <= MIN < MAX <= 65535, not {text:?}")
            })
    }
}

impl TryFrom<String> for ExternalIp {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let parsed = match text.split_once('/') {
            Some((public, private)) => {
                public
                    .parse()
                    .ok()
                    .zip(private.parse().ok())
                    .map(|(public, private)| Self {
                        public,
                        private: Some(private),
                    })
            }
            None => text.parse().ok().map(|public| Self {
                public,
                private: None,
            }),
        };
        parsed.ok_or_else(|| {
            format!(
                "external_ip must be \"PUBLIC\" or \"PUBLIC/PRIVATE\" IP addresses, not {text:?}"
            )
        })
    }
}

impl RelayConfig {
    /// The relay IP of one family, if configured.
    pub fn ip(&self, v6: bool) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| ip.is_ipv6() == v6)
    }

    /// The advertised address for a relay socket bound at `local`.
    pub fn advertised(&self, local: SocketAddr) -> SocketAddr {
        for map in &self.external {
            let family_matches = map.public.is_ipv4() == local.is_ipv4();
            let hit = match map.private {
                Some(p) => p == local.ip(),
                None => family_matches,
            };
            if hit {
                return SocketAddr::new(map.public, local.port());
            }
        }
        local
    }

    /// Where a relay sends to reach `peer`: a peer at one of this server's advertised
    /// relay addresses (a client of this server relaying to another one) is this host
    /// itself, so the datagram goes to the matching local address, same port, and the
    /// kernel delivers it without leaving the machine. Sent to the advertised address, it
    /// would come back only if the 1:1 NAT in front of the server hairpins, and many
    /// cloud NATs do not (coturn maps the same way). Every other peer is unchanged.
    ///
    /// Only the socket address changes: the core has already decided on `peer` (its
    /// permission and peer policy see the advertised form). The inverse of
    /// [`RelayConfig::to_advertised`]. Without `external_ip`, one branch.
    #[inline]
    pub fn to_local(&self, peer: SocketAddr) -> SocketAddr {
        if self.external.is_empty() {
            return peer;
        }
        self.local_of_advertised(peer).unwrap_or(peer)
    }

    /// The source a peer datagram (or TCP connection) is reported to the core with: one
    /// sent by a relay socket of this server arrives from its local address and is shown
    /// as its advertised one, the address the receiving allocation's permission was
    /// installed for and its client knows (XOR-PEER-ADDRESS, channel). Every other
    /// source is unchanged. The inverse of [`RelayConfig::to_local`]. Without
    /// `external_ip`, one branch.
    #[inline]
    pub fn to_advertised(&self, source: SocketAddr) -> SocketAddr {
        if self.external.is_empty() {
            return source;
        }
        if self.ip(source.is_ipv6()) == Some(source.ip()) {
            self.advertised(source)
        } else {
            source
        }
    }

    /// The local relay address that [`RelayConfig::advertised`] shows as `addr`, if any.
    fn local_of_advertised(&self, addr: SocketAddr) -> Option<SocketAddr> {
        let map = self.external.iter().find(|m| m.public == addr.ip())?;
        let local_ip = map.private.or_else(|| self.ip(addr.is_ipv6()))?;
        let local = SocketAddr::new(local_ip, addr.port());
        // Only a relay IP of ours, and only where the mapping is the one `advertised`
        // picks for it (a second entry for the same private IP never applies).
        (self.ip(local_ip.is_ipv6()) == Some(local_ip) && self.advertised(local) == addr)
            .then_some(local)
    }
}

/// Finds the addresses to relay on when none are configured: the first global-looking
/// IPv4 and IPv6 addresses of the host's interfaces.
pub fn detect_relay_ips() -> Vec<IpAddr> {
    let Ok(ifaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = Vec::new();
    for want_v6 in [false, true] {
        let found = ifaces.iter().map(|i| i.ip()).find(|ip| {
            ip.is_ipv6() == want_v6
                && !ip.is_loopback()
                && !ip.is_unspecified()
                && match ip {
                    IpAddr::V4(v4) => !v4.is_link_local(),
                    IpAddr::V6(v6) => !v6.is_unicast_link_local(),
                }
        });
        out.extend(found);
    }
    out
}

/// Relay ports this process holds, per address family, shared by the workers: the port
/// search skips them without a syscall, so finding a free port stays cheap when most of
/// the range is in use (a search that tried `bind` on every taken port cost milliseconds
/// per Allocate near the top of a 10 000-port range).
#[derive(Debug)]
pub(crate) struct PortsInUse {
    v4: Mutex<Box<[u64; 1024]>>,
    v6: Mutex<Box<[u64; 1024]>>,
}

impl Default for PortsInUse {
    fn default() -> Self {
        Self {
            v4: Mutex::new(Box::new([0; 1024])),
            v6: Mutex::new(Box::new([0; 1024])),
        }
    }
}

impl PortsInUse {
    fn bits(&self, v6: bool) -> std::sync::MutexGuard<'_, Box<[u64; 1024]>> {
        let m = if v6 { &self.v6 } else { &self.v4 };
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `port` of the family free again.
    pub(crate) fn release(&self, v6: bool, port: u16) {
        self.bits(v6)[usize::from(port / 64)] &= !(1u64 << (port % 64));
    }
}

fn is_set(bits: &[u64; 1024], port: u16) -> bool {
    bits[usize::from(port / 64)] & (1u64 << (port % 64)) != 0
}

fn set(bits: &mut [u64; 1024], port: u16) {
    bits[usize::from(port / 64)] |= 1u64 << (port % 64);
}

/// Most `bind` calls one search makes on ports this process does not hold (held by other
/// programs): past that the range counts as exhausted (508) rather than spending more.
const MAX_BIND_ATTEMPTS: usize = 64;

/// Binds a UDP socket on `ip` at a port of the range, starting at a random offset and
/// skipping the ports this process holds (`held`) and those the kernel refuses. `even`
/// restricts the search to even ports; with `reserve_next`, port+1 is bound too and
/// returned. The ports bound are marked in `held`; release them there when the sockets
/// close.
pub(crate) fn bind_in_range(
    ip: IpAddr,
    min: u16,
    max: u16,
    start: u32,
    even: bool,
    reserve_next: bool,
    held: &PortsInUse,
) -> io::Result<(BoundUdp, Option<BoundUdp>)> {
    let exhausted = || io::Error::new(io::ErrorKind::AddrInUse, "relay port range exhausted");
    let span = u32::from(max.saturating_sub(min)) + 1;
    let mut bits = held.bits(ip.is_ipv6());
    let mut attempts = 0;
    // Why the last bind failed, when not for a port in use (EADDRNOTAVAIL: the relay IP
    // is gone from the machine): reported instead of "exhausted".
    let mut other_error = None;
    // One socket for every attempt: a failed bind leaves it unbound and reusable.
    let mut socket = None;
    for i in 0..span {
        let port = u32::from(min) + (start.wrapping_add(i) % span);
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if (even && !port.is_multiple_of(2))
            || is_set(&bits, port)
            || (reserve_next && (port >= max || is_set(&bits, port + 1)))
        {
            continue;
        }
        if attempts == MAX_BIND_ATTEMPTS {
            break;
        }
        attempts += 1;
        let candidate = match socket.take() {
            Some(s) => s,
            None => udp_socket(ip)?,
        };
        if let Err(e) = candidate.bind(&SocketAddr::new(ip, port).into()) {
            match e.kind() {
                io::ErrorKind::AddrInUse => {}
                // The same answer for every port: stop searching.
                io::ErrorKind::AddrNotAvailable => return Err(e),
                _ => other_error = Some(e),
            }
            socket = Some(candidate);
            continue;
        }
        let bound = (candidate.into(), SocketAddr::new(ip, port));
        if !reserve_next {
            set(&mut bits, port);
            return Ok((bound, None));
        }
        let next = SocketAddr::new(ip, port + 1);
        if let Ok(socket) = bind_udp_exact(next) {
            set(&mut bits, port);
            set(&mut bits, port + 1);
            return Ok((bound, Some((socket, next))));
        }
        // port+1 is taken by another program: close this one and search on.
    }
    Err(other_error.unwrap_or_else(exhausted))
}

/// A UDP socket bound to a relay address, and that address.
pub(crate) type BoundUdp = (std::net::UdpSocket, SocketAddr);

/// Relay sockets reserved by EVEN-PORT's R bit (RFC 8656 §7.2), shared by every worker:
/// the client claims one with RESERVATION-TOKEN from its second socket, which the
/// kernel's reuseport hash may hand to another worker than the one that reserved the
/// port. A parked socket is in no worker's poller; the worker that claims it registers
/// it. Touched only on Allocates with EVEN-PORT R or RESERVATION-TOKEN and by the sweep.
#[derive(Debug, Default)]
pub(crate) struct ParkedRelays {
    held: Mutex<HashMap<[u8; 8], (BoundUdp, Instant)>>,
}

impl ParkedRelays {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 8], (BoundUdp, Instant)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a reserved socket under its token until `until`.
    pub(crate) fn park(&self, token: [u8; 8], socket: BoundUdp, until: Instant) {
        self.held().insert(token, (socket, until));
    }

    /// Takes the socket parked under `token`: `Ok` while its time has not run out at
    /// `now`, `Err` with the socket (to close) when it has; `None` for an unknown token.
    pub(crate) fn claim(&self, token: [u8; 8], now: Instant) -> Option<Result<BoundUdp, BoundUdp>> {
        let (socket, until) = self.held().remove(&token)?;
        Some(if until > now { Ok(socket) } else { Err(socket) })
    }

    /// Takes every socket whose time ran out by `now` (to close).
    pub(crate) fn expire(&self, now: Instant) -> Vec<BoundUdp> {
        let mut held = self.held();
        let gone: Vec<[u8; 8]> = held
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(t, _)| *t)
            .collect();
        gone.into_iter()
            .filter_map(|t| held.remove(&t).map(|(s, _)| s))
            .collect()
    }
}

/// A non-blocking UDP socket of `ip`'s family, IPv6-only for IPv6. Non-blocking from
/// `socket()` itself (`SOCK_NONBLOCK`): Allocate is on the allocation-rate path, and
/// every syscall saved there counts.
fn udp_socket(ip: IpAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(ip, 0)),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

fn bind_udp_exact(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = udp_socket(addr.ip())?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// How many connected peer sockets ([`connect_beside`]) the process may hold: a share of
/// the descriptor limit, so that they never take the descriptors new allocations need
/// (past the budget, relays send unconnected, as without them).
#[derive(Debug)]
pub(crate) struct PeerSocketBudget {
    left: std::sync::atomic::AtomicUsize,
}

impl PeerSocketBudget {
    /// A budget of `sockets`.
    pub(crate) fn new(sockets: usize) -> Self {
        Self {
            left: std::sync::atomic::AtomicUsize::new(sockets),
        }
    }

    /// Takes one socket from the budget; false when none is left.
    pub(crate) fn take(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Gives one back.
    pub(crate) fn give_back(&self) {
        self.left.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A second UDP socket on a relay socket's address `local`, connected to `peer`.
///
/// Why: a send on an unconnected socket looks the route up for every datagram, a
/// connected socket keeps it (`sk_dst_cache`); on the relay path that is ~8 % of the
/// server's CPU per packet (benches/results/README.md). The kernel hands datagrams from
/// exactly `peer` to the connected socket (an exact 4-tuple match outranks the wildcard
/// one) and everything else, other ports of a permitted peer IP included (RFC 8656 §9),
/// to `relay` as before, so what the relay receives does not change.
///
/// A second bind on a port needs `SO_REUSEPORT` on both sockets. It is set only for the
/// bind and cleared on both afterwards, so another program (even of the same user)
/// cannot bind into the relay's port later: it gets `EADDRINUSE` as it would without
/// this socket.
pub(crate) fn connect_beside(
    relay: &std::net::UdpSocket,
    local: SocketAddr,
    peer: SocketAddr,
) -> io::Result<std::net::UdpSocket> {
    let relay = socket2::SockRef::from(relay);
    relay.set_reuse_port(true)?;
    let connected = (|| -> io::Result<std::net::UdpSocket> {
        let socket = udp_socket(local.ip())?;
        socket.set_reuse_port(true)?;
        socket.bind(&local.into())?;
        socket.set_reuse_port(false)?;
        socket.connect(&peer.into())?;
        Ok(socket.into())
    })();
    let cleared = relay.set_reuse_port(false);
    let connected = connected?;
    // Never leave the relay's port open to others: without the clear, drop both.
    cleared.map(|()| connected)
}

/// Binds a TCP listener for an RFC 6062 relay on `ip`, at a port of the range, skipping
/// ports in use. `SO_REUSEADDR`/`SO_REUSEPORT` let connections to peers leave from the same
/// relayed address (RFC 6062 §5.2).
pub(crate) fn bind_tcp_in_range(
    ip: IpAddr,
    min: u16,
    max: u16,
    start: u32,
) -> io::Result<std::net::TcpListener> {
    let span = u32::from(max.saturating_sub(min)) + 1;
    // As in `bind_in_range`: a failure other than a port in use is reported.
    let mut other_error = None;
    for i in 0..span {
        let port = u32::from(min) + (start.wrapping_add(i) % span);
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        let addr = SocketAddr::new(ip, port);
        let bound = tcp_socket(addr).and_then(|socket| {
            socket.bind(&addr.into())?;
            socket.listen(128)?;
            Ok(socket)
        });
        match bound {
            Ok(socket) => return Ok(socket.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
            Err(e) => {
                // The same error on every port (the IP is gone): stop searching.
                if e.kind() == io::ErrorKind::AddrNotAvailable {
                    return Err(e);
                }
                other_error = Some(e);
            }
        }
    }
    Err(other_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "relay port range exhausted")))
}

/// A TCP socket for the relay side, shareable with the relay's listener.
pub(crate) fn tcp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ip_maps_one_address_or_a_whole_family() {
        let config = RelayConfig {
            ips: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
            external: vec![
                ExternalIp {
                    public: "203.0.113.10".parse().unwrap(),
                    private: Some("10.0.0.5".parse().unwrap()),
                },
                ExternalIp {
                    public: "2001:db8::10".parse().unwrap(),
                    private: None,
                },
            ],
            ..RelayConfig::default()
        };
        let adv = |s: &str| config.advertised(s.parse().unwrap()).to_string();
        assert_eq!(adv("10.0.0.5:50000"), "203.0.113.10:50000");
        assert_eq!(adv("10.0.0.6:50000"), "10.0.0.6:50000", "unmapped IP stays");
        assert_eq!(adv("[fd00::5]:50001"), "[2001:db8::10]:50001");
    }

    fn behind_nat() -> RelayConfig {
        RelayConfig {
            ips: vec!["10.99.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
            external: vec![
                ExternalIp {
                    public: "198.18.0.10".parse().unwrap(),
                    private: Some("10.99.0.2".parse().unwrap()),
                },
                ExternalIp {
                    public: "2001:db8::10".parse().unwrap(),
                    private: None,
                },
            ],
            ..RelayConfig::default()
        }
    }

    #[test]
    fn a_peer_at_our_advertised_address_is_sent_to_the_local_one() {
        let config = behind_nat();
        let local = |s: &str| config.to_local(s.parse().unwrap()).to_string();
        assert_eq!(local("198.18.0.10:50000"), "10.99.0.2:50000");
        assert_eq!(local("[2001:db8::10]:50001"), "[fd00::2]:50001");
        // Any other peer, the private address itself included, is left alone.
        assert_eq!(local("198.18.0.11:50000"), "198.18.0.11:50000");
        assert_eq!(local("10.99.0.2:50000"), "10.99.0.2:50000");
        assert_eq!(local("203.0.113.7:3478"), "203.0.113.7:3478");
    }

    #[test]
    fn a_source_at_our_local_relay_address_is_shown_advertised() {
        let config = behind_nat();
        let adv = |s: &str| config.to_advertised(s.parse().unwrap()).to_string();
        assert_eq!(adv("10.99.0.2:50000"), "198.18.0.10:50000");
        assert_eq!(adv("[fd00::2]:50001"), "[2001:db8::10]:50001");
        // The family-wide mapping applies to our relay IP only, not to every peer of it.
        assert_eq!(adv("[fd00::3]:50001"), "[fd00::3]:50001");
        assert_eq!(adv("10.99.0.3:50000"), "10.99.0.3:50000");
        assert_eq!(adv("198.18.0.10:50000"), "198.18.0.10:50000");
        // The two are inverse on relay addresses.
        for s in ["10.99.0.2:49152", "[fd00::2]:65535"] {
            let local: SocketAddr = s.parse().unwrap();
            assert_eq!(config.to_local(config.to_advertised(local)), local);
        }
    }

    #[test]
    fn external_ip_is_one_string_or_a_list() {
        let parse = |json: &str| serde_json::from_str::<RelayConfig>(json).map(|c| c.external);
        let one = ExternalIp {
            public: "198.18.0.10".parse().unwrap(),
            private: Some("10.99.0.2".parse().unwrap()),
        };
        assert_eq!(
            parse(r#"{"external_ip": "198.18.0.10/10.99.0.2"}"#).unwrap(),
            vec![one]
        );
        assert_eq!(
            parse(r#"{"external_ip": ["198.18.0.10/10.99.0.2"]}"#).unwrap(),
            vec![one]
        );
        assert_eq!(parse(r#"{"external_ip": []}"#).unwrap(), vec![]);
        for bad in [r#"{"external_ip": "nope"}"#, r#"{"external_ip": ["nope"]}"#] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("external_ip must be"), "{bad}: {e}");
        }
        assert!(parse(r#"{"external_ip": 5}"#).is_err());
    }

    #[test]
    fn without_external_ip_nothing_is_mapped() {
        let config = RelayConfig {
            ips: vec!["10.99.0.2".parse().unwrap()],
            ..RelayConfig::default()
        };
        let a: SocketAddr = "10.99.0.2:50000".parse().unwrap();
        assert_eq!((config.to_local(a), config.to_advertised(a)), (a, a));
    }

    #[test]
    fn a_mapping_to_an_address_we_do_not_relay_on_is_not_used_for_peers() {
        let config = RelayConfig {
            ips: vec!["10.99.0.2".parse().unwrap()],
            external: vec![ExternalIp {
                public: "198.18.0.10".parse().unwrap(),
                private: Some("10.99.0.9".parse().unwrap()),
            }],
            ..RelayConfig::default()
        };
        let peer: SocketAddr = "198.18.0.10:50000".parse().unwrap();
        assert_eq!(config.to_local(peer), peer);
        let source: SocketAddr = "10.99.0.9:50000".parse().unwrap();
        assert_eq!(config.to_advertised(source), source);
    }

    #[test]
    fn the_peer_socket_budget_runs_out_and_refills() {
        let budget = PeerSocketBudget::new(2);
        assert!(budget.take() && budget.take());
        assert!(!budget.take(), "empty");
        budget.give_back();
        assert!(budget.take());
        assert!(!budget.take());
    }

    #[test]
    fn a_connected_socket_beside_a_relay_takes_only_its_peer() {
        use std::net::UdpSocket;
        use std::time::Duration;
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = relay.local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let other_port = UdpSocket::bind("127.0.0.1:0").unwrap();
        let connected = connect_beside(&relay, local, peer.local_addr().unwrap()).unwrap();
        assert_eq!(connected.local_addr().unwrap(), local);
        for s in [&relay, &connected] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let mut buf = [0u8; 16];

        // The peer's datagrams reach the connected socket; the same IP from another port
        // still reaches the relay socket.
        peer.send_to(b"peer", local).unwrap();
        other_port.send_to(b"other", local).unwrap();
        let n = connected.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"peer");
        let (n, from) = relay.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"other");
        assert_eq!(from, other_port.local_addr().unwrap());

        // What the connected socket sends comes from the relay's address.
        connected.send(b"back").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], local));

        // Nobody else can bind the port, with or without SO_REUSEPORT.
        let intruder = udp_socket(local.ip()).unwrap();
        intruder.set_reuse_port(true).unwrap();
        assert!(intruder.bind(&local.into()).is_err());
        assert!(UdpSocket::bind(local).is_err());
    }

    #[test]
    fn a_relay_ip_not_on_the_machine_is_reported_as_such_not_as_exhaustion() {
        // TEST-NET-3: on no interface of a test machine; nothing is sent.
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        let held = PortsInUse::default();
        let Err(e) = bind_in_range(ip, 40000, 40009, 0, false, false, &held) else {
            return; // ip_nonlocal_bind is on: the kernel binds anything.
        };
        assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable, "{e}");
        let e = bind_tcp_in_range(ip, 40000, 40009, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable, "{e}");
        // A range that is merely full is still "exhausted".
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = bind_in_range(
            "127.0.0.1".parse().unwrap(),
            port,
            port,
            0,
            false,
            false,
            &held,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    }

    #[test]
    fn port_search_skips_taken_ports_and_reports_exhaustion() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        if port == u16::MAX {
            return;
        }
        let held = PortsInUse::default();
        // A range of two ports whose first is taken: the second is used.
        let ((s, local), _) = bind_in_range(ip, port, port + 1, 0, false, false, &held).unwrap();
        assert_eq!(s.local_addr().unwrap().port(), port + 1);
        assert_eq!(local, s.local_addr().unwrap());
        // Now both are taken, one of them by this process (no bind is tried on it).
        assert!(is_set(&held.bits(false), port + 1));
        assert!(bind_in_range(ip, port, port + 1, 0, false, false, &held).is_err());
        // Released in the set but still bound: the kernel refuses it, still exhausted.
        held.release(false, port + 1);
        assert!(bind_in_range(ip, port, port + 1, 0, false, false, &held).is_err());
        drop(s);
        let ((s, _), _) = bind_in_range(ip, port, port + 1, 0, false, false, &held).unwrap();
        assert_eq!(s.local_addr().unwrap().port(), port + 1);
    }
}
