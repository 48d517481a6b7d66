//! Which peer addresses an allocation may relay to (RFC 8656 §17, "Security
//! Considerations": a relay must not become a way into the operator's own networks).
//!
//! Safe by default: loopback, unspecified, link-local (including the 169.254.169.254
//! cloud metadata service), multicast, broadcast, private and CGNAT ranges, the
//! documentation and benchmarking ranges, and the IPv6 transition prefixes (6to4, Teredo,
//! NAT64) are refused with 403. IPv4-mapped and IPv4-compatible IPv6 forms are folded to
//! IPv4 first, and addresses embedded in NAT64 and 6to4 prefixes are checked as IPv4 too,
//! so `::ffff:127.0.0.1` is loopback.
//!
//! The operator can deny more ranges or allow ranges out of the default set; explicit deny
//! wins over explicit allow. Allowing loopback is a separate, `dangerous_` switch because
//! relaying to the server's own host reaches every service listening on it.

mod own;

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::str::FromStr;

pub use self::own::OwnAddresses;

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

/// A CIDR string that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// Not an address, or a prefix length wider than the address.
    Syntax,
    /// An address with bits set past the prefix length (`10.0.0.1/8`): probably a typo for
    /// the network or for one host, so neither is guessed.
    HostBits {
        /// The network the prefix length names.
        network: Cidr,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax => f.write_str(
                "expected an address or ADDRESS/PREFIX-LENGTH, e.g. 10.0.0.0/8 or fc00::/7",
            ),
            Self::HostBits { network } => write!(
                f,
                "host bits are set past the prefix length: write the network {network}, or \
                 the single address with /{}",
                if network.addr.is_ipv4() { 32 } else { 128 }
            ),
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// A prefix; `None` if `len` exceeds the address width. Host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then(|| Self {
            addr: mask(addr, len),
            len,
        })
    }

    /// Whether `ip` lies in the prefix (no family folding: see [`PeerPolicy`]).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.len) == self.addr
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| CidrError::Syntax)?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Syntax)?;
        let len = len.unwrap_or_else(|| if addr.is_ipv4() { 32 } else { 128 });
        let network = Self::new(addr, len).ok_or(CidrError::Syntax)?;
        if network.addr != addr {
            return Err(CidrError::HostBits { network });
        }
        Ok(network)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// Why a peer address is refused: the rule that matched, one label per kind of range (a
/// bounded set, so it can label a metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyRule {
    /// A range of the operator's `[peers] deny`.
    Operator,
    /// Unspecified addresses (0.0.0.0/8, ::).
    Unspecified,
    /// Loopback (127.0.0.0/8, ::1).
    Loopback,
    /// Private networks: RFC 1918, IPv6 unique local.
    Private,
    /// Carrier-grade NAT (RFC 6598).
    CarrierNat,
    /// Link-local, incl. the 169.254.169.254 metadata service.
    LinkLocal,
    /// Multicast and broadcast.
    Multicast,
    /// Documentation, benchmarking, IETF-reserved and discard ranges.
    Reserved,
    /// IPv6 transition prefixes (6to4, Teredo, local-use NAT64) and the 6to4 anycast relay.
    Transition,
    /// A cloud metadata service (169.254.169.254, AWS's fd00:ec2::254).
    Metadata,
    /// The server's own listening address, or its relay IP outside the relay range.
    OwnAddress,
}

impl DenyRule {
    /// Every rule, in label order.
    pub const ALL: [Self; 11] = [
        Self::Operator,
        Self::Unspecified,
        Self::Loopback,
        Self::Private,
        Self::CarrierNat,
        Self::LinkLocal,
        Self::Multicast,
        Self::Reserved,
        Self::Transition,
        Self::Metadata,
        Self::OwnAddress,
    ];

    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator_deny",
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::CarrierNat => "carrier_nat",
            Self::LinkLocal => "link_local",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
            Self::Transition => "ipv6_transition",
            Self::Metadata => "metadata",
            Self::OwnAddress => "own_address",
        }
    }

    /// Its index in [`DenyRule::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Ranges refused by default, with the rule they fall under and why they are dangerous.
/// Checked in order: the first match names the rule.
const DEFAULT_DENY: &[(&str, DenyRule, &str)] = &[
    (
        "169.254.169.254/32",
        DenyRule::Metadata,
        "cloud metadata (AWS, GCP, Azure, ...)",
    ),
    ("fd00:ec2::254/128", DenyRule::Metadata, "AWS IPv6 metadata"),
    (
        "0.0.0.0/8",
        DenyRule::Unspecified,
        "unspecified / this network",
    ),
    ("10.0.0.0/8", DenyRule::Private, "private (RFC 1918)"),
    (
        "100.64.0.0/10",
        DenyRule::CarrierNat,
        "carrier-grade NAT (RFC 6598)",
    ),
    ("127.0.0.0/8", DenyRule::Loopback, "loopback"),
    (
        "169.254.0.0/16",
        DenyRule::LinkLocal,
        "link-local, incl. the 169.254.169.254 metadata service",
    ),
    ("172.16.0.0/12", DenyRule::Private, "private (RFC 1918)"),
    (
        "192.0.0.0/24",
        DenyRule::Reserved,
        "IETF protocol assignments",
    ),
    (
        "192.0.2.0/24",
        DenyRule::Reserved,
        "documentation (TEST-NET-1)",
    ),
    ("192.88.99.0/24", DenyRule::Transition, "6to4 relay anycast"),
    ("192.168.0.0/16", DenyRule::Private, "private (RFC 1918)"),
    ("198.18.0.0/15", DenyRule::Reserved, "benchmarking"),
    (
        "198.51.100.0/24",
        DenyRule::Reserved,
        "documentation (TEST-NET-2)",
    ),
    (
        "203.0.113.0/24",
        DenyRule::Reserved,
        "documentation (TEST-NET-3)",
    ),
    ("224.0.0.0/4", DenyRule::Multicast, "multicast"),
    (
        "240.0.0.0/4",
        DenyRule::Multicast,
        "reserved, incl. broadcast",
    ),
    ("::/128", DenyRule::Unspecified, "unspecified"),
    ("::1/128", DenyRule::Loopback, "loopback"),
    ("100::/64", DenyRule::Reserved, "discard-only"),
    ("2001::/32", DenyRule::Transition, "Teredo"),
    ("2001:db8::/32", DenyRule::Reserved, "documentation"),
    ("2002::/16", DenyRule::Transition, "6to4"),
    ("fc00::/7", DenyRule::Private, "unique local (private)"),
    (
        "64:ff9b:1::/48",
        DenyRule::Transition,
        "local-use NAT64 (RFC 8215)",
    ),
    ("fe80::/10", DenyRule::LinkLocal, "link-local"),
    ("fec0::/10", DenyRule::LinkLocal, "site-local (deprecated)"),
    ("ff00::/8", DenyRule::Multicast, "multicast"),
];

/// The peer-address policy (`[peers]`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "PeerSection"))]
pub struct PeerPolicy {
    default_deny: Vec<(Cidr, DenyRule)>,
    /// Ranges the operator allows even though the default refuses them.
    pub allow: Vec<Cidr>,
    /// Ranges the operator refuses in addition to the default; wins over `allow`.
    pub deny: Vec<Cidr>,
    /// Allow 127.0.0.0/8 and ::1 (tests on one host need it; production never should).
    pub dangerous_allow_loopback: bool,
    /// The server's own addresses, refused whatever `allow` says (set by the runtime,
    /// not in the file).
    pub own: OwnAddresses,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        Self {
            default_deny: DEFAULT_DENY
                .iter()
                .filter_map(|(c, rule, _)| Some((c.parse().ok()?, *rule)))
                .collect(),
            allow: Vec::new(),
            deny: Vec::new(),
            dangerous_allow_loopback: false,
            own: OwnAddresses::default(),
        }
    }
}

/// `[peers]` as written in the file.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PeerSection {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    dangerous_allow_loopback_peers: bool,
}

#[cfg(feature = "serde")]
impl Default for PeerSection {
    fn default() -> Self {
        let policy = PeerPolicy::default();
        Self {
            allow: policy.allow,
            deny: policy.deny,
            dangerous_allow_loopback_peers: policy.dangerous_allow_loopback,
        }
    }
}

#[cfg(feature = "serde")]
impl From<PeerSection> for PeerPolicy {
    fn from(s: PeerSection) -> Self {
        Self {
            allow: s.allow,
            deny: s.deny,
            dangerous_allow_loopback: s.dangerous_allow_loopback_peers,
            ..Self::default()
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

impl PeerPolicy {
    /// Whether relaying to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.verdict(ip).is_ok()
    }

    /// The part of [`PeerPolicy::check`] that depends on the port: whether `peer` is one of
    /// the server's own addresses. A Send needs only this per datagram: its permission
    /// already passed the whole check for the IP (and a new policy takes back what it
    /// refuses).
    ///
    /// # Errors
    ///
    /// [`DenyRule::OwnAddress`].
    pub fn check_own(&self, peer: SocketAddr) -> Result<(), DenyRule> {
        let ip = normalise(peer.ip());
        let canonical = SocketAddr::new(ip, peer.port());
        let as_v4 = embedded_ipv4(ip).map(|v4| SocketAddr::new(IpAddr::V4(v4), peer.port()));
        let loopback = self.dangerous_allow_loopback;
        if self.own.contains(canonical, loopback)
            || as_v4.is_some_and(|e| self.own.contains(e, loopback))
        {
            return Err(DenyRule::OwnAddress);
        }
        Ok(())
    }

    /// The one peer check every path relies on (CreatePermission, ChannelBind and RFC 6062
    /// Connect install a permission only when it passes; data, Send, ConnectionAttempt and
    /// ICMP need that permission; a new policy drops the permissions it refuses): the
    /// address in every encoding (IPv4-mapped, IPv4-compatible, NAT64, 6to4) against the
    /// operator's deny list, the server's own addresses, the operator's allow list, and
    /// the default-deny ranges, in that order.
    ///
    /// # Errors
    ///
    /// The [`DenyRule`] that refuses it.
    pub fn check(&self, peer: SocketAddr) -> Result<(), DenyRule> {
        let ip = normalise(peer.ip());
        let canonical = SocketAddr::new(ip, peer.port());
        let as_v4 = embedded_ipv4(ip).map(|v4| SocketAddr::new(IpAddr::V4(v4), peer.port()));
        let hit_deny = |c: &Cidr| c.contains(ip) || as_v4.is_some_and(|e| c.contains(e.ip()));
        if self.deny.iter().any(hit_deny) {
            return Err(DenyRule::Operator);
        }
        self.check_own(SocketAddr::new(canonical.ip(), peer.port()))?;
        self.verdict(ip)
    }

    /// Whether relaying to `ip` is allowed, and if not, the rule that refuses it.
    ///
    /// # Errors
    ///
    /// The [`DenyRule`] that matched.
    pub fn verdict(&self, ip: IpAddr) -> Result<(), DenyRule> {
        let ip = normalise(ip);
        let embedded = embedded_ipv4(ip);
        let hit = |c: &Cidr| c.contains(ip) || embedded.is_some_and(|e| c.contains(IpAddr::V4(e)));
        if self.deny.iter().any(hit) {
            return Err(DenyRule::Operator);
        }
        // An allow opens exactly what it names: the address itself (IPv4-mapped and
        // -compatible forms are folded to it), not a NAT64 or 6to4 form of it, which the
        // default refuses as a transition address.
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        if self.dangerous_allow_loopback && ip.is_loopback() {
            return Ok(());
        }
        match self.default_deny.iter().find(|(c, _)| hit(c)) {
            Some((_, rule)) => Err(*rule),
            None => Ok(()),
        }
    }
}

/// Folds IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) forms to IPv4.
pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let o = v6.octets();
            // IPv4-compatible (deprecated, RFC 4291 §2.5.5.1), but not :: and ::1.
            if o[..12].iter().all(|&b| b == 0) && u128::from(v6) > 1 {
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// The IPv4 address inside a NAT64 (64:ff9b::/96, RFC 6052) or 6to4 (2002::/16) address,
/// so a peer cannot reach 10.0.0.1 by writing it as 64:ff9b::a00:1.
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let o = v6.octets();
    if o[..12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if o[..2] == [0x20, 0x02] {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_range_parses() {
        assert_eq!(PeerPolicy::default().default_deny.len(), DEFAULT_DENY.len());
    }

    #[test]
    fn cidr_parsing_and_containment() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>(),
            Err(CidrError::HostBits { network: c }),
            "a typo for the network or for one host: neither is guessed"
        );
        assert!(matches!(
            "2001:db8::1/32".parse::<Cidr>(),
            Err(CidrError::HostBits { .. })
        ));
        assert_eq!(Cidr::new("10.1.2.3".parse().unwrap(), 8), Some(c));
        assert!(c.contains("10.255.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!(
            "fc00::/7"
                .parse::<Cidr>()
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert_eq!("1.2.3.4".parse::<Cidr>().unwrap().to_string(), "1.2.3.4/32");
    }
}
