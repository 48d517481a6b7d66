//! One peer check for every path (`PeerPolicy::check`): every encoding of an address gets
//! the verdict of the address itself, the server's own addresses are refused, a denied
//! peer is 403 whatever the relay's family, the data paths follow the permissions the
//! check installed, and a new policy takes back what it refuses.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use turnpike_proto::policy::{Cidr, DenyRule, OwnAddresses, PeerPolicy};
use turnpike_stun::Method;

/// Every form of an IPv4 address a client can write as a peer.
fn encodings(v4: Ipv4Addr) -> Vec<(&'static str, IpAddr)> {
    let o = v4.octets();
    let mut all = vec![
        ("IPv4", IpAddr::V4(v4)),
        ("IPv4-mapped", IpAddr::V6(v4.to_ipv6_mapped())),
        (
            "NAT64 64:ff9b::/96",
            IpAddr::V6(Ipv6Addr::new(
                0x64,
                0xff9b,
                0,
                0,
                0,
                0,
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
            )),
        ),
        (
            "6to4 2002::/16",
            IpAddr::V6(Ipv6Addr::new(
                0x2002,
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
                0,
                0,
                0,
                0,
                1,
            )),
        ),
    ];
    // IPv4-compatible (::a.b.c.d); :: and ::1 are their own addresses.
    if u32::from(v4) > 1 {
        all.push(("IPv4-compatible", IpAddr::V6(v4.to_ipv6_compatible())));
    }
    all
}

proptest! {
    /// A refused IPv4 address is refused in every encoding; an allowed one is allowed
    /// as itself, mapped, compatible and through NAT64, while 6to4 (a transition range)
    /// stays refused.
    #[test]
    fn every_encoding_gets_the_verdict_of_the_address(bits in any::<u32>(), port in 1u16..) {
        let policy = PeerPolicy::default();
        let v4 = Ipv4Addr::from(bits);
        let verdict = policy.check(SocketAddr::new(v4.into(), port));
        for (form, ip) in encodings(v4) {
            let got = policy.check(SocketAddr::new(ip, port));
            match (verdict, form) {
                (Err(_), _) => prop_assert!(got.is_err(), "{form} {ip} of refused {v4}"),
                (Ok(()), "6to4 2002::/16") => prop_assert_eq!(got, Err(DenyRule::Transition)),
                (Ok(()), _) => prop_assert_eq!(got, Ok(()), "{} {} of allowed {}", form, ip, v4),
            }
        }
    }

    /// An operator's deny range, at any prefix length (unaligned included), refuses
    /// exactly the addresses inside it, in every encoding.
    #[test]
    fn a_deny_range_of_any_length_refuses_exactly_its_addresses(
        base in any::<u32>(), len in 0u8..=32, probe in any::<u32>(),
    ) {
        let mut policy = PeerPolicy::default();
        policy.allow = vec![Cidr::new(Ipv4Addr::UNSPECIFIED.into(), 0).unwrap()];
        policy.deny = vec![Cidr::new(Ipv4Addr::from(base).into(), len).unwrap()];
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let inside = probe & mask == base & mask;
        for (form, ip) in encodings(Ipv4Addr::from(probe)) {
            let got = policy.check(SocketAddr::new(ip, 9));
            if inside {
                prop_assert_eq!(got, Err(DenyRule::Operator), "{} {}", form, ip);
            } else if form == "IPv4" || form == "IPv4-mapped" {
                prop_assert_eq!(got, Ok(()), "{} {} outside", form, ip);
            }
        }
    }

    /// An allow range opens exactly what it names: inside it, the address and its
    /// mapped form; never a NAT64 or 6to4 form of it, nor anything outside.
    #[test]
    fn an_allow_range_opens_exactly_what_it_names(len in 8u8..=32, probe in any::<u32>()) {
        let base = u32::from(Ipv4Addr::new(10, 77, 0, 0));
        let mut policy = PeerPolicy::default();
        policy.allow = vec![Cidr::new(Ipv4Addr::from(base).into(), len).unwrap()];
        let probe = (probe & 0x00FF_FFFF) | 0x0A00_0000; // inside 10/8, refused by default
        let mask = u32::MAX << (32 - len);
        let inside = probe & mask == base & mask;
        for (form, ip) in encodings(Ipv4Addr::from(probe)) {
            let got = policy.check(SocketAddr::new(ip, 9)).is_ok();
            let want = inside && matches!(form, "IPv4" | "IPv4-mapped" | "IPv4-compatible");
            prop_assert_eq!(got, want, "{} {} (inside: {})", form, ip, inside);
        }
    }
}

const LISTENER: &str = "198.51.100.1:3478";
const RELAY_IP: &str = "192.0.2.1";

/// A server whose own addresses are its listener and relay IP; the documentation ranges
/// they sit in are allowed, so only the own-address rule can refuse them.
fn own_sim() -> Sim {
    Sim::with(|c| {
        c.peers.allow = vec![cidr("198.51.100.0/24"), cidr("192.0.2.0/24")];
        c.peers.own = OwnAddresses {
            listeners: vec![sa(LISTENER), sa("[2001:db8::10]:3478")],
            relay_ips: vec![ip(RELAY_IP)],
            relay_ports: (49152, 65535),
        };
    })
}

/// Every form of a refused peer, and the rule that refuses it.
fn refused_forms() -> Vec<(SocketAddr, DenyRule)> {
    vec![
        (sa("127.0.0.1:9"), DenyRule::Loopback),
        (sa("[::ffff:127.0.0.1]:9"), DenyRule::Loopback),
        (sa("[::127.0.0.1]:9"), DenyRule::Loopback),
        (sa("[64:ff9b::7f00:1]:9"), DenyRule::Loopback),
        (sa("[2002:7f00:1::1]:9"), DenyRule::Loopback),
        (sa("169.254.169.254:80"), DenyRule::Metadata),
        (sa("[::ffff:169.254.169.254]:80"), DenyRule::Metadata),
        (sa("[fd00:ec2::254]:80"), DenyRule::Metadata),
        (sa("10.0.0.1:9"), DenyRule::Private),
        (sa("[64:ff9b::a00:1]:9"), DenyRule::Private),
        (sa("[fd12::1]:9"), DenyRule::Private),
        (sa("0.0.0.0:9"), DenyRule::Unspecified),
        (sa("[::]:9"), DenyRule::Unspecified),
        (sa("[2001:0:4136:e378::1]:9"), DenyRule::Transition),
        (sa("[64:ff9b:1::808:808]:9"), DenyRule::Transition),
        (sa(LISTENER), DenyRule::OwnAddress),
        (sa("[::ffff:198.51.100.1]:3478"), DenyRule::OwnAddress),
        (sa("[2001:db8::10]:3478"), DenyRule::OwnAddress),
        (sa("192.0.2.1:22"), DenyRule::OwnAddress),
        (sa("[64:ff9b::c000:201]:22"), DenyRule::OwnAddress),
    ]
}

/// CreatePermission, ChannelBind (on a UDP allocation with an IPv4 relay only, so a
/// wrong family would say 443) and Connect (on a TCP allocation) all refuse every form
/// with 403, each counted under its rule.
#[test]
fn every_request_path_refuses_every_form_with_403() {
    let mut sim = own_sim();
    let mut u = TestClient::alice("203.0.113.10:40000");
    u.allocate(&mut sim, &[]).success();
    let mut t = TestClient::new(tcp("203.0.113.10:40001"), BOB.0, BOB.1);
    t.allocate_tcp(&mut sim, &[]).success();
    let forms = refused_forms();
    for (i, &(peer, rule)) in forms.iter().enumerate() {
        assert_eq!(sim.server.config().peers.check(peer), Err(rule), "{peer}");
        u.create_permission(&mut sim, &[peer]).assert_error(403);
        u.channel_bind(&mut sim, 0x4000 + i as u16, peer)
            .assert_error(403);
        t.request(&mut sim, Method::CONNECT, &[A::Peer(peer)])
            .assert_error(403);
    }
    let stats = sim.server.stats();
    let total: u64 = stats.peer_denied.iter().sum();
    assert_eq!(total, 3 * forms.len() as u64);
    assert_eq!(stats.peer_denied(DenyRule::OwnAddress), 3 * 5);
}

/// Inside the relay range the relay IP is another allocation's relayed address: two
/// clients of one server relaying to each other stays allowed. Its other ports are the
/// host's own services: a Send there is dropped even with a permission for the IP.
#[test]
fn relayed_addresses_stay_reachable_other_ports_of_the_relay_ip_do_not() {
    let mut sim = own_sim();
    let mut a = TestClient::alice("203.0.113.10:40000");
    let relayed = a.allocate(&mut sim, &[]).success().relayed()[0];
    let mut b = TestClient::bob("203.0.113.11:40000");
    let addr_relay_b = b.allocate(&mut sim, &[]).success().relayed()[0];
    let relay_b = sim.host.relay_of(addr_relay_b);
    a.channel_bind(&mut sim, 0x4000, sa("192.0.2.1:49153"))
        .success();
    b.create_permission(&mut sim, &[relayed]).success();
    // A's permission covers 192.0.2.1: a Send to its port 22 still goes nowhere.
    assert_eq!(
        a.send_indication(&mut sim, sa("192.0.2.1:22"), b"ssh?", &[]),
        Outcome::None
    );
    assert!(matches!(
        a.send_indication(&mut sim, sa("192.0.2.1:49153"), b"hello b", &[]),
        Outcome::ToPeer { .. }
    ));
    assert!(sim.peer_send(relay_b, relayed, b"hello a").is_some());
    assert_eq!(sim.server.stats().peer_denied(DenyRule::OwnAddress), 1);
}

/// Peer data, RFC 6062 ConnectionAttempt and ICMP need a permission the check
/// installed: from a refused address they go nowhere.
#[test]
fn the_data_paths_follow_the_permissions() {
    let mut sim = own_sim();
    let mut u = TestClient::alice("203.0.113.10:40000");
    let addr_relay = u.allocate(&mut sim, &[]).success().relayed()[0];
    let relay = sim.host.relay_of(addr_relay);
    let mut t = TestClient::new(tcp("203.0.113.10:40001"), BOB.0, BOB.1);
    let addr_tcp_relay = t.allocate_tcp(&mut sim, &[]).success().relayed()[0];
    let tcp_relay = sim.host.relay_of(addr_tcp_relay);
    for (peer, _) in refused_forms().into_iter().filter(|(p, _)| p.is_ipv4()) {
        assert_eq!(sim.peer_send(relay, peer, b"in"), None, "{peer}");
        assert_eq!(sim.icmp(relay, peer, 3, 3, 0), None, "{peer}");
        assert_eq!(sim.peer_connects(tcp_relay, peer).1, None, "{peer}");
    }
}

/// A reload whose policy refuses a peer takes back its permission and channel: the
/// data stops both ways at once.
#[test]
fn a_new_policy_takes_back_what_it_refuses() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let addr_relay = c.allocate(&mut sim, &[]).success().relayed()[0];
    let relay = sim.host.relay_of(addr_relay);
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    c.create_permission(&mut sim, &[sa("1.1.1.1:53")]).success();
    assert!(sim.peer_send(relay, peer_v4(), b"x").is_some());
    let mut next = (**sim.server.config()).clone();
    next.peers.deny = vec![cidr(&format!("{}/32", peer_v4().ip()))];
    sim.server.reconfigure(Arc::new(next)).unwrap();
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);
    assert_eq!(c.channel_data(&mut sim, 0x4000, b"x"), Outcome::None);
    // The other permission stays.
    assert!(sim.peer_send(relay, sa("1.1.1.1:53"), b"x").is_some());
}
