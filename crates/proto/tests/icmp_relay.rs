//! ICMP relaying (RFC 8656 §11.5, §18.13): an ICMP error about a relayed datagram reaches
//! the client as a Data indication with XOR-PEER-ADDRESS and ICMP (no DATA), only with a
//! permission for the peer's IP, only for the ICMP types the RFC lists, and at most
//! `icmp_per_second` per allocation.

mod common;

use std::time::Duration;

use common::*;
use turnpike_stun::attr::Icmp;

fn icmp(icmp_type: u8, code: u8, error_data: u32) -> Icmp {
    Icmp {
        icmp_type,
        code,
        error_data,
    }
}

#[test]
fn relayed_only_with_a_permission_for_the_peer_ip() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    assert_eq!(sim.icmp(relay, peer_v4(), 3, 3, 0), None);
    assert_eq!(sim.server.stats().icmp_dropped, 1);

    c.create_permission(&mut sim, &[peer_v4()]).success();
    let got = sim.icmp(relay, peer_v4(), 3, 3, 0).expect("relayed");
    assert_eq!(got.to, c.ft);
    assert_eq!(got.icmp_indication(), (peer_v4(), icmp(3, 3, 0)));
    assert_eq!(sim.server.stats().icmp_relayed, 1);

    // Ports are not compared; a port the system could not tell is 0 and stays 0.
    let other_port = sa("8.8.8.8:1");
    assert_eq!(
        sim.icmp(relay, other_port, 11, 0, 0)
            .unwrap()
            .icmp_indication(),
        (other_port, icmp(11, 0, 0))
    );
    let no_port = sa("8.8.8.8:0");
    assert_eq!(
        sim.icmp(relay, no_port, 3, 1, 0)
            .unwrap()
            .icmp_indication()
            .0,
        no_port
    );
    // Another IP: no.
    assert_eq!(sim.icmp(relay, peer_v4_b(), 3, 3, 0), None);
}

#[test]
fn a_channel_makes_no_difference() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    // Data still goes as ChannelData, ICMP always as a Data indication.
    assert_eq!(
        sim.peer_send(relay, peer_v4(), b"x")
            .unwrap()
            .channel_data()
            .0,
        0x4000
    );
    let got = sim.icmp(relay, peer_v4(), 3, 1, 0).unwrap();
    assert_eq!(got.icmp_indication(), (peer_v4(), icmp(3, 1, 0)));
}

#[test]
fn expired_permissions_stop_it() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    sim.advance_secs(301);
    assert_eq!(sim.icmp(relay, peer_v4(), 3, 3, 0), None);
}

#[test]
fn only_the_listed_icmp_types_are_relayed() {
    let mut sim = Sim::with(|c| c.turn.icmp_per_second = 0);
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    let v4 = sim.host.relay_of(resp.relayed()[0]);
    let v6 = sim.host.relay_of(resp.relayed()[1]);
    c.create_permission(&mut sim, &[peer_v4(), peer_v6()])
        .success();
    // ICMPv4: 3 (destination unreachable) and 11 (time exceeded) only.
    for t in 0..=255u8 {
        let relayed = sim.icmp(v4, peer_v4(), t, 0, 0).is_some();
        assert_eq!(relayed, t == 3 || t == 11, "ICMPv4 type {t}");
    }
    // ICMPv6: 1, 2 and 3 only (not 128 echo request, not 4 parameter problem).
    for t in 0..=255u8 {
        let relayed = sim.icmp(v6, peer_v6(), t, 0, 0).is_some();
        assert_eq!(relayed, (1..=3).contains(&t), "ICMPv6 type {t}");
    }
}

#[test]
fn error_data_is_the_mtu_for_too_big_and_zero_otherwise() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    let v4 = sim.host.relay_of(resp.relayed()[0]);
    let v6 = sim.host.relay_of(resp.relayed()[1]);
    c.create_permission(&mut sim, &[peer_v4(), peer_v6()])
        .success();
    // ICMPv4 3/4 "fragmentation needed": the next-hop MTU.
    let (_, i) = sim
        .icmp(v4, peer_v4(), 3, 4, 1400)
        .unwrap()
        .icmp_indication();
    assert_eq!(i, icmp(3, 4, 1400));
    // Anything else: 0, whatever the runtime passed.
    let (_, i) = sim
        .icmp(v4, peer_v4(), 3, 3, 1400)
        .unwrap()
        .icmp_indication();
    assert_eq!(i, icmp(3, 3, 0));
    let (_, i) = sim.icmp(v4, peer_v4(), 11, 0, 7).unwrap().icmp_indication();
    assert_eq!(i, icmp(11, 0, 0));
    // ICMPv6 2 "packet too big": the MTU; type 1 keeps 0.
    let (p, i) = sim
        .icmp(v6, peer_v6(), 2, 0, 1280)
        .unwrap()
        .icmp_indication();
    assert_eq!((p, i), (peer_v6(), icmp(2, 0, 1280)));
    let (_, i) = sim
        .icmp(v6, peer_v6(), 1, 4, 1280)
        .unwrap()
        .icmp_indication();
    assert_eq!(i, icmp(1, 4, 0));
}

#[test]
fn the_relay_must_be_the_allocations_relay_of_the_peers_family() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    // An IPv6 peer on an IPv4 relay, an unknown relay: dropped.
    assert_eq!(sim.icmp(relay, peer_v6(), 1, 0, 0), None);
    assert_eq!(
        sim.icmp(turnpike_proto::RelayId(999), peer_v4(), 3, 3, 0),
        None
    );
    // An IPv4-mapped peer is the IPv4 peer (and ICMPv4 types apply).
    let mapped = sa("[::ffff:8.8.8.8]:5000");
    let (p, i) = sim.icmp(relay, mapped, 3, 3, 0).unwrap().icmp_indication();
    assert_eq!((p, i), (peer_v4(), icmp(3, 3, 0)));
}

#[test]
fn rate_limited_per_allocation() {
    let mut sim = Sim::with(|c| c.turn.icmp_per_second = 5);
    let (mut a, ra) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let (mut b, rb) = allocated_alice(&mut sim, "203.0.113.10:40001");
    a.create_permission(&mut sim, &[peer_v4()]).success();
    b.create_permission(&mut sim, &[peer_v4()]).success();
    let burst = (0..8)
        .filter(|_| sim.icmp(ra, peer_v4(), 3, 3, 0).is_some())
        .count();
    assert_eq!(burst, 5, "a burst of one second's worth");
    assert_eq!(sim.server.stats().icmp_dropped, 3);
    // The other allocation has its own budget.
    assert!(sim.icmp(rb, peer_v4(), 3, 3, 0).is_some());
    // One more every 200 ms, even when asked every 50 ms.
    let mut got = 0;
    for _ in 0..20 {
        sim.advance(Duration::from_millis(50));
        got += usize::from(sim.icmp(ra, peer_v4(), 3, 3, 0).is_some());
    }
    assert_eq!(got, 5, "one second at 5/s");
    // Asked every 150 ms, the fractions of a token add up instead of being lost.
    let mut got = 0;
    for _ in 0..8 {
        sim.advance(Duration::from_millis(150));
        got += usize::from(sim.icmp(ra, peer_v4(), 3, 3, 0).is_some());
    }
    assert_eq!(got, 6, "1.2 seconds at 5/s");
    // Data is not limited by it.
    assert!(sim.peer_send(ra, peer_v4(), b"data").is_some());
}

#[test]
fn a_dead_allocation_relays_no_icmp() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    // Past the lifetime, before the sweep.
    sim.elapsed += Duration::from_secs(601);
    assert_eq!(sim.icmp(relay, peer_v4(), 3, 3, 0), None);
}

#[test]
fn over_tcp_the_indication_goes_to_the_stream_5_tuple() {
    let mut sim = Sim::new();
    let mut c = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    let (_, relay) = c.allocate_ok(&mut sim);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    let got = sim.icmp(relay, peer_v4(), 3, 3, 0).unwrap();
    assert_eq!(got.to, c.ft);
    assert_eq!(
        got.bytes.len() % 4,
        0,
        "a STUN message needs no stream padding"
    );
}
