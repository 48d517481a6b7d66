//! Peer policy: can an authenticated client make the relay reach into the operator's own
//! networks (RFC 8656 §17, "the server should refuse to relay to [...] addresses that are
//! internal")?
//!
//! With a real UDP allocation (asking for an IPv6 relay too, RFC 8656 §7.2, so IPv6
//! peers meet the policy rather than a 443), CreatePermission and ChannelBind to every
//! address of [`targets`]; with a TCP allocation (RFC 6062), Connect to each. PASS is a
//! 403. A 443 (no relay of that family) or another error is FAIL-soft: refused, but not
//! by the policy, so the policy for that address was not exercised. Accepted is FAIL; for
//! Connect a 447 is FAIL too (the server tried to connect), and so is no answer within
//! the client's wait (the server is still connecting: a policy refusal is immediate).
//!
//! CreatePermission and ChannelBind make the server send nothing to the peer. A Connect
//! the server accepts makes it open a TCP connection to that peer: that is the attack
//! being tested, and the port is 9 (discard) except for the server's own address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use turnpike_bench::client::Transport;
use turnpike_bench::{ClientError, Credentials, TurnClient};
use turnpike_stun::attr::{
    AdditionalAddressFamily, AddressFamily, RequestedTransport, TransportProtocol, XorPeerAddress,
    XorRelayedAddress,
};
use turnpike_stun::{ChannelNumber, Message, Method};

use super::{Finding, Report, Verdict};

const GROUP: &str = "peers";
/// The most time the Connect probes may take together (a server that accepts makes each
/// wait for the client's timeout).
const CONNECT_BUDGET: Duration = Duration::from_secs(30);
/// The peer port for every target but the server's own address.
const PEER_PORT: u16 = 9;
/// ChannelBind's peer port for target `i` is this plus `i`.
const CHANNEL_PORT_BASE: u16 = 10_000;

fn v6(s: &str) -> IpAddr {
    s.parse::<Ipv6Addr>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::V6)
}

/// The addresses a relay must refuse, labelled: loopback, unspecified, metadata, private,
/// CGNAT, link-local, multicast, broadcast, and the IPv6 encodings of loopback, private
/// and metadata addresses (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96 and the
/// local-use 64:ff9b:1::/48 per RFC 6052 §2.2, 6to4, Teredo), then the server's own
/// UDP and TCP listening addresses.
pub(crate) fn targets(server: SocketAddr, tcp: SocketAddr) -> Vec<(String, SocketAddr)> {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let ips: Vec<(&str, IpAddr)> = vec![
        ("loopback", v4(127, 0, 0, 1)),
        ("loopback", v4(127, 1, 2, 3)),
        ("loopback", v6("::1")),
        ("unspecified", v4(0, 0, 0, 0)),
        ("unspecified", v6("::")),
        ("metadata", v4(169, 254, 169, 254)),
        ("metadata", v6("fd00:ec2::254")),
        ("private 10/8", v4(10, 0, 0, 1)),
        ("private 172.16/12", v4(172, 16, 0, 1)),
        ("private 172.16/12", v4(172, 31, 255, 254)),
        ("private 192.168/16", v4(192, 168, 1, 1)),
        ("private fc00::/7", v6("fc00::1")),
        ("private fc00::/7", v6("fd12:3456:789a::1")),
        ("CGNAT 100.64/10", v4(100, 64, 0, 1)),
        ("link-local", v4(169, 254, 1, 1)),
        ("link-local", v6("fe80::1")),
        ("multicast", v4(224, 0, 0, 1)),
        ("multicast", v4(239, 255, 255, 250)),
        ("multicast", v6("ff02::1")),
        ("broadcast", v4(255, 255, 255, 255)),
        ("IPv4-mapped loopback", v6("::ffff:127.0.0.1")),
        ("IPv4-mapped private", v6("::ffff:10.0.0.1")),
        ("IPv4-mapped metadata", v6("::ffff:169.254.169.254")),
        ("IPv4-compatible loopback", v6("::127.0.0.1")),
        ("IPv4-compatible private", v6("::10.0.0.1")),
        ("IPv4-compatible metadata", v6("::169.254.169.254")),
        ("NAT64 64:ff9b::/96 loopback", v6("64:ff9b::7f00:1")),
        ("NAT64 64:ff9b::/96 private", v6("64:ff9b::a00:1")),
        ("NAT64 64:ff9b::/96 metadata", v6("64:ff9b::a9fe:a9fe")),
        (
            "NAT64 64:ff9b:1::/48 loopback",
            v6("64:ff9b:1:7f00:0:100::"),
        ),
        ("NAT64 64:ff9b:1::/48 private", v6("64:ff9b:1:a00:0:100::")),
        ("6to4 loopback", v6("2002:7f00:1::1")),
        ("6to4 private", v6("2002:a00:1::1")),
        ("6to4 metadata", v6("2002:a9fe:a9fe::1")),
        // Teredo (RFC 4380 §4): server 65.54.227.120, client 127.0.0.1 (inverted).
        (
            "Teredo loopback",
            v6("2001:0:4136:e378:8000:63bf:80ff:fffe"),
        ),
    ];
    let mut all: Vec<(String, SocketAddr)> = ips
        .into_iter()
        .map(|(label, ip)| {
            let addr = SocketAddr::new(ip, PEER_PORT);
            (format!("{label} {addr}"), addr)
        })
        .collect();
    all.push((format!("own UDP address {server}"), server));
    if tcp != server {
        all.push((format!("own TCP address {tcp}"), tcp));
    }
    all
}

/// A reason phrase as printable text (coturn ends some with a NUL).
fn printable(reason: &str) -> String {
    reason.chars().filter(|c| !c.is_control()).collect()
}

/// The verdict for a CreatePermission or ChannelBind (or Connect: `connect`) answer.
fn judge(
    result: &Result<Vec<u8>, ClientError>,
    connect: bool,
    families: &str,
) -> (Verdict, String) {
    match result {
        Ok(_) if connect => (
            Verdict::Fail,
            "accepted: the server connected to the peer".into(),
        ),
        Ok(_) => (Verdict::Fail, "accepted".into()),
        Err(ClientError::Rejected { code: 403, .. }) => (Verdict::Pass, "refused: 403".into()),
        Err(ClientError::Rejected {
            code: 443, reason, ..
        }) => (
            Verdict::FailSoft,
            format!(
                "family error before policy: 443 {} (relay {families}): the policy for this address was not exercised",
                printable(reason)
            ),
        ),
        Err(ClientError::Rejected {
            code: 447, reason, ..
        }) if connect => (
            Verdict::Fail,
            format!(
                "accepted: the server tried to connect and failed (447 {})",
                printable(reason)
            ),
        ),
        Err(ClientError::Rejected { code, reason, .. }) => (
            Verdict::FailSoft,
            format!(
                "refused with {code} {}, not 403: not by the peer policy",
                printable(reason)
            ),
        ),
        Err(ClientError::Timeout(_)) if connect => (
            Verdict::Fail,
            "no answer within 1.5 s: the server is connecting (a policy refusal is immediate)"
                .into(),
        ),
        Err(e) => (Verdict::FailSoft, format!("no verdict: {e}")),
    }
}

/// The relayed addresses of an Allocate success.
fn relayed(resp: &[u8]) -> Vec<SocketAddr> {
    Message::new_checked(resp).map_or_else(
        |_| Vec::new(),
        |m| {
            m.get_all::<XorRelayedAddress>()
                .filter_map(Result::ok)
                .map(|a| a.0)
                .collect()
        },
    )
}

fn family_names(relays: &[SocketAddr]) -> String {
    let names: Vec<&str> = relays
        .iter()
        .map(|a| if a.is_ipv4() { "IPv4" } else { "IPv6" })
        .collect();
    if names.is_empty() {
        "unknown".into()
    } else {
        names.join("+")
    }
}

/// A UDP allocation, with an IPv6 relay too if the server grants one.
fn allocate_udp(c: &mut TurnClient) -> Result<Vec<SocketAddr>, ClientError> {
    let dual = c.request(Method::ALLOCATE, &|w| {
        w.put(&RequestedTransport(TransportProtocol::UDP))?;
        w.put(&AdditionalAddressFamily(AddressFamily::IPV6))
    });
    match dual {
        Ok(resp) => Ok(relayed(&resp)),
        // RFC 8656 §7.2: a server without dual allocation answers 400 or 440; ask for
        // the server's default family alone.
        Err(ClientError::Rejected { .. }) => c.allocate(None).map(|a| vec![a]),
        Err(e) => Err(e),
    }
}

/// Runs the UDP and TCP probes with `credentials`, adding verdicts to `report`.
pub(crate) fn run(
    server: SocketAddr,
    tcp: SocketAddr,
    credentials: &Credentials,
    report: &mut Report,
) {
    let targets = targets(server, tcp);
    udp(server, credentials, &targets, report);
    tcp_connect(tcp, credentials, &targets, report);
}

fn skip_all(report: &mut Report, what: &str, targets: &[(String, SocketAddr)], why: &str) {
    for (label, _) in targets {
        report.add(Finding::new(
            GROUP,
            format!("{what} {label}"),
            Verdict::Skip,
            why,
        ));
    }
}

fn udp(
    server: SocketAddr,
    credentials: &Credentials,
    targets: &[(String, SocketAddr)],
    report: &mut Report,
) {
    let mut c = match TurnClient::connect(server, credentials) {
        Ok(c) => c,
        Err(e) => return skip_all(report, "UDP", targets, &format!("no client: {e}")),
    };
    let relays = match allocate_udp(&mut c) {
        Ok(r) => r,
        Err(e) => {
            return skip_all(
                report,
                "CreatePermission/ChannelBind",
                targets,
                &format!("no UDP allocation: {e}"),
            );
        }
    };
    let families = family_names(&relays);
    report.add(Finding::new(
        GROUP,
        "UDP allocation",
        Verdict::Info,
        format!("relayed {relays:?}"),
    ));
    for (i, (label, peer)) in targets.iter().enumerate() {
        let result = c
            .request(Method::CREATE_PERMISSION, &|w| {
                w.put(&XorPeerAddress(*peer))
            })
            .map(|_| Vec::new());
        let (v, d) = judge(&result, false, &families);
        report.add(Finding::new(
            GROUP,
            format!("CreatePermission {label}"),
            v,
            d,
        ));
        // A port of its own per address: encodings the server folds to one address
        // (::ffff:10.0.0.1 is 10.0.0.1) must not meet "peer bound to another channel"
        // (400) instead of the policy. Nothing is sent to it.
        let channel = ChannelNumber::new(0x4000 + i as u16).unwrap_or(ChannelNumber::MIN);
        let bound = if peer.port() == PEER_PORT {
            SocketAddr::new(peer.ip(), CHANNEL_PORT_BASE + i as u16)
        } else {
            *peer
        };
        let result = c.channel_bind(channel, bound).map(|()| Vec::new());
        let (v, d) = judge(&result, false, &families);
        let kind = label.rsplit_once(' ').map_or(label.as_str(), |(k, _)| k);
        report.add(Finding::new(
            GROUP,
            format!("ChannelBind 0x{:04X} {kind} {bound}", channel.value()),
            v,
            d,
        ));
    }
    // Delete the allocation (Refresh 0); a failure only leaves it to expire.
    let _ = c.refresh(0);
}

fn tcp_connect(
    tcp: SocketAddr,
    credentials: &Credentials,
    targets: &[(String, SocketAddr)],
    report: &mut Report,
) {
    let mut c = match TurnClient::connect_over(tcp, credentials, &Transport::Tcp) {
        Ok(c) => c,
        Err(e) => {
            return skip_all(
                report,
                "Connect",
                targets,
                &format!("no TCP connection: {e}"),
            );
        }
    };
    let resp = c.request(Method::ALLOCATE, &|w| {
        w.put(&RequestedTransport(TransportProtocol::TCP))
    });
    let relays = match resp {
        Ok(r) => relayed(&r),
        Err(e) => {
            return skip_all(
                report,
                "Connect",
                targets,
                &format!("no RFC 6062 TCP allocation: {e}"),
            );
        }
    };
    let families = family_names(&relays);
    report.add(Finding::new(
        GROUP,
        "TCP allocation",
        Verdict::Info,
        format!("relayed {relays:?}"),
    ));
    let deadline = Instant::now() + CONNECT_BUDGET;
    for (label, peer) in targets {
        let name = format!("Connect {label}");
        if Instant::now() >= deadline {
            report.add(Finding::new(
                GROUP,
                name,
                Verdict::Skip,
                format!("the Connect probes ran out of their {CONNECT_BUDGET:?}"),
            ));
            continue;
        }
        let result = c.request(Method::CONNECT, &|w| w.put(&XorPeerAddress(*peer)));
        let (v, d) = judge(&result, true, &families);
        report.add(Finding::new(GROUP, name, v, d));
    }
    let _ = c.refresh(0);
}
