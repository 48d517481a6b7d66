//! The peer-address policy (RFC 8656 §21, safe defaults): which peers a relay may reach.
//! Internal, special and transition ranges are refused with 403 by CreatePermission and
//! ChannelBind; the operator's allow list opens a range, the deny list wins over it, and
//! `dangerous_allow_loopback` opens loopback only.

mod common;

use std::net::SocketAddr;

use common::*;
use turnpike_proto::policy::PeerPolicy;

/// Addresses the default policy must refuse, with why.
const REFUSED: &[(&str, &str)] = &[
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback /8"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("::", "unspecified v6"),
    ("::1", "loopback v6"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local v6"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast (SSDP)"),
    ("ff02::1", "multicast v6"),
    ("ff0e::1", "global multicast v6"),
    ("255.255.255.255", "broadcast"),
    ("10.0.0.1", "10/8"),
    ("10.255.255.255", "10/8 top"),
    ("172.16.0.1", "172.16/12"),
    ("172.31.255.254", "172.16/12 top"),
    ("192.168.1.1", "192.168/16"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT top"),
    ("fc00::1", "ULA"),
    ("fd12:3456::1", "ULA fd"),
    ("2002:0a00:0001::1", "6to4 (of 10.0.0.1)"),
    ("2002:0808:0808::1", "6to4 (of a public address)"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378::1", "Teredo"),
    ("192.0.2.1", "TEST-NET-1"),
    ("198.51.100.1", "TEST-NET-2"),
    ("203.0.113.1", "TEST-NET-3"),
    ("2001:db8::1", "documentation v6"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("198.18.0.1", "benchmarking"),
    ("240.0.0.1", "reserved"),
];

/// Public addresses the default policy allows.
const ALLOWED: &[&str] = &[
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.15.255.255",
    "172.32.0.1",
    "100.63.255.255",
    "100.128.0.1",
    "11.0.0.1",
    "2606:4700::1111",
    "2a00:1450:4001::200e",
    "64:ff9b::808:808",
    "::ffff:8.8.8.8",
];

#[test]
fn default_policy_refuses_internal_and_special_ranges() {
    let policy = PeerPolicy::default();
    for (addr, why) in REFUSED {
        assert!(!policy.permits(ip(addr)), "{addr} ({why}) must be refused");
    }
    for addr in ALLOWED {
        assert!(policy.permits(ip(addr)), "{addr} must be allowed");
    }
}

/// A dual-stack allocation so that the family check (443) never hides the policy (403).
fn dual(sim: &mut Sim, client: &str) -> TestClient {
    let mut c = TestClient::alice(client);
    let resp = c.allocate(sim, &[A::AdditionalFamily(0x02)]).success();
    assert_eq!(resp.relayed().len(), 2);
    c
}

fn peer(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(common::ip(ip), port)
}

#[test]
fn refused_peers_get_403_from_create_permission_and_channel_bind() {
    let mut sim = Sim::new();
    let mut c = dual(&mut sim, "203.0.113.10:40000");
    for (i, (addr, why)) in REFUSED.iter().enumerate() {
        let p = peer(addr, 3478);
        let resp = c.create_permission(&mut sim, &[p]);
        assert_eq!(
            resp.error_code(),
            Some(403),
            "CreatePermission {addr} ({why}): {resp:?}"
        );
        let resp = c.channel_bind(&mut sim, 0x4000 + i as u16, p);
        assert_eq!(
            resp.error_code(),
            Some(403),
            "ChannelBind {addr} ({why}): {resp:?}"
        );
    }
    for (i, addr) in ALLOWED.iter().enumerate() {
        // A port per address: `::ffff:8.8.8.8` is the same peer as `8.8.8.8`.
        let p = peer(addr, 3000 + i as u16);
        c.create_permission(&mut sim, &[p]).success();
        c.channel_bind(&mut sim, 0x4100 + i as u16, p).success();
    }
}

#[test]
fn operator_allow_list_opens_a_range() {
    let mut sim = Sim::with(|c| {
        c.peers.allow = vec![
            cidr("10.1.0.0/16"),
            cidr("fd00:1::/32"),
            cidr("192.0.2.0/24"),
        ];
    });
    let mut c = dual(&mut sim, "203.0.113.10:40000");
    let relay = sim.host.relay_of(sa("192.0.2.1:49152"));
    c.create_permission(
        &mut sim,
        &[sa("10.1.2.3:9"), sa("[fd00:1::5]:9"), sa("192.0.2.77:9")],
    )
    .success();
    c.channel_bind(&mut sim, 0x4000, sa("10.1.200.1:9"))
        .success();
    c.create_permission(&mut sim, &[sa("[::ffff:10.1.9.9]:9")])
        .success();
    let got = sim
        .peer_send(relay, sa("10.1.2.3:1234"), b"internal")
        .expect("allowed");
    assert_eq!(got.data_indication().0, sa("10.1.2.3:1234"));
    // Outside the allowed ranges, still refused.
    c.create_permission(&mut sim, &[sa("10.2.0.1:9")])
        .assert_error(403);
    c.create_permission(&mut sim, &[sa("[fd00:2::5]:9")])
        .assert_error(403);
    c.create_permission(&mut sim, &[sa("127.0.0.1:9")])
        .assert_error(403);
}

#[test]
fn deny_list_wins_over_allow_list_and_adds_ranges() {
    let mut sim = Sim::with(|c| {
        c.peers.allow = vec![cidr("10.0.0.0/8")];
        c.peers.deny = vec![cidr("10.9.0.0/16"), cidr("8.8.4.0/24")];
    });
    let mut c = dual(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[sa("10.1.0.1:9")]).success();
    c.create_permission(&mut sim, &[sa("10.9.0.1:9")])
        .assert_error(403);
    c.channel_bind(&mut sim, 0x4000, sa("10.9.0.1:9"))
        .assert_error(403);
    c.create_permission(&mut sim, &[sa("8.8.4.4:53")])
        .assert_error(403);
    c.create_permission(&mut sim, &[sa("[::ffff:10.9.0.1]:9")])
        .assert_error(403);
    c.create_permission(&mut sim, &[sa("8.8.8.8:53")]).success();

    let mut p = PeerPolicy::default();
    p.allow = vec![cidr("10.0.0.0/8")];
    p.deny = vec![cidr("10.9.0.0/16")];
    assert!(p.permits(ip("10.1.1.1")));
    assert!(!p.permits(ip("10.9.1.1")));
    assert!(
        !p.permits(ip("64:ff9b::a09:101")),
        "NAT64 of a denied address"
    );
}

#[test]
fn dangerous_allow_loopback_opens_loopback_only() {
    let mut policy = PeerPolicy::default();
    policy.dangerous_allow_loopback = true;
    for addr in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
        assert!(policy.permits(ip(addr)), "{addr}");
    }
    for addr in [
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "169.254.169.254",
        "fe80::1",
        "192.168.0.1",
    ] {
        assert!(!policy.permits(ip(addr)), "{addr} stays refused");
    }
    // And the deny list still wins over it.
    policy.deny = vec![cidr("127.0.0.53/32")];
    assert!(!policy.permits(ip("127.0.0.53")));

    let mut sim = Sim::with(|c| c.peers.dangerous_allow_loopback = true);
    let mut c = dual(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[sa("127.0.0.1:9"), sa("[::1]:9")])
        .success();
    c.channel_bind(&mut sim, 0x4000, sa("127.0.0.1:10"))
        .success();
    c.create_permission(&mut sim, &[sa("10.0.0.1:9")])
        .assert_error(403);
}

#[test]
fn refused_peer_data_never_reaches_the_client() {
    // A peer in a refused range cannot get a permission, so its datagrams are dropped.
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[sa("10.0.0.1:9")])
        .assert_error(403);
    assert_eq!(sim.peer_send(relay, sa("10.0.0.1:9"), b"x"), None);
    assert_eq!(
        c.send_indication(&mut sim, sa("10.0.0.1:9"), b"x", &[]),
        Outcome::None
    );
}

#[test]
fn cidr_parsing() {
    assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
    // Host bits past the prefix length are a typo for the network or for one host: the
    // file is refused rather than one of them guessed.
    for typo in ["10.1.2.3/8", "2001:db8::1/32"] {
        assert!(matches!(
            typo.parse::<turnpike_proto::policy::Cidr>(),
            Err(turnpike_proto::policy::CidrError::HostBits { .. })
        ));
    }
    assert!(
        "10.0.0.0/33"
            .parse::<turnpike_proto::policy::Cidr>()
            .is_err()
    );
    assert!("::/129".parse::<turnpike_proto::policy::Cidr>().is_err());
    assert!("nonsense".parse::<turnpike_proto::policy::Cidr>().is_err());
    assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
    assert!(
        !cidr("0.0.0.0/0").contains(ip("::1")),
        "no family folding in Cidr"
    );
}
