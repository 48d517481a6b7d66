//! Address families (RFC 8656 §7.2 and RFC 6156): REQUESTED-ADDRESS-FAMILY picks the
//! relay's family; ADDITIONAL-ADDRESS-FAMILY IPv6 asks for a second, IPv6, relayed address
//! (a dual allocation); peers must match a relayed address's family (443).

mod common;

use common::*;
use turnpike_proto::Family;

#[test]
fn additional_family_ipv6_gives_two_relayed_addresses() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    let relayed = resp.relayed();
    assert_eq!(
        relayed,
        vec![sa("192.0.2.1:49152"), sa("[2001:db8::1]:49153")]
    );
    assert_eq!(resp.address_error(), None);
    assert_eq!(resp.lifetime(), Some(600));
    assert_eq!(sim.host.live.len(), 2);
    assert_eq!(sim.host.ledger.total(), 1, "one allocation, one quota slot");
    assert_eq!(sim.server.allocation_count(), 1);
}

#[test]
fn without_ipv6_on_the_host_the_ipv4_half_succeeds_with_address_error_code() {
    let mut sim = Sim::new();
    sim.host.v6 = false;
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    assert_eq!(resp.relayed(), vec![sa("192.0.2.1:49152")]);
    assert_eq!(resp.address_error(), Some((0x02, 440)));
    assert_eq!(
        resp.verify(&c.key()),
        Some(turnpike_stun::IntegrityKind::Sha1)
    );
    // The allocation is IPv4 only: IPv6 peers are a family mismatch.
    c.create_permission(&mut sim, &[peer_v6()])
        .assert_error(443);
}

#[test]
fn ipv6_port_exhaustion_is_reported_as_508_for_that_family() {
    let mut sim = Sim::new();
    sim.host.port_limit = 1;
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    assert_eq!(resp.relayed().len(), 1);
    assert_eq!(resp.address_error(), Some((0x02, 508)));
}

#[test]
fn additional_family_ipv4_is_400() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::AdditionalFamily(0x01)])
        .assert_error(400);
    c.allocate(&mut sim, &[A::AdditionalFamily(0x07)])
        .assert_error(400);
    assert!(sim.host.binds.is_empty());
}

#[test]
fn additional_with_requested_family_is_400() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(
        &mut sim,
        &[A::RequestedFamily(0x01), A::AdditionalFamily(0x02)],
    )
    .assert_error(400);
    c.allocate(
        &mut sim,
        &[A::RequestedFamily(0x02), A::AdditionalFamily(0x02)],
    )
    .assert_error(400);
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn requested_family_ipv6_alone_gives_an_ipv6_relay() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::RequestedFamily(0x02)]).success();
    assert_eq!(resp.relayed(), vec![sa("[2001:db8::1]:49152")]);
    assert_eq!(sim.host.binds[0].0, Family::V6);
    assert_eq!(
        resp.mapped(),
        Some(sa("203.0.113.10:40000")),
        "client stays IPv4"
    );
    c.create_permission(&mut sim, &[peer_v6()]).success();
    c.create_permission(&mut sim, &[peer_v4()])
        .assert_error(443);
    c.channel_bind(&mut sim, 0x4000, peer_v4())
        .assert_error(443);
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );
}

#[test]
fn peer_of_the_other_family_is_443() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let resp = c.create_permission(&mut sim, &[peer_v6()]);
    resp.assert_error(443);
    c.channel_bind(&mut sim, 0x4000, peer_v6())
        .assert_error(443);
    // One mismatching peer refuses the whole CreatePermission.
    c.create_permission(&mut sim, &[peer_v4(), peer_v6()])
        .assert_error(443);
}

#[test]
fn dual_allocation_relays_ipv4_and_ipv6_peers() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    let v4 = sim.host.relay_of(resp.relayed()[0]);
    let v6 = sim.host.relay_of(resp.relayed()[1]);
    c.create_permission(&mut sim, &[peer_v4(), peer_v6()])
        .success();
    c.channel_bind(&mut sim, 0x4006, peer_v6()).success();

    // Outbound picks the relay of the peer's family.
    let (r, _, _, _) = c.send_indication(&mut sim, peer_v4(), b"4", &[]).datagram();
    assert_eq!(r, v4);
    let (r, _, _, _) = c.send_indication(&mut sim, peer_v6(), b"6", &[]).datagram();
    assert_eq!(r, v6);
    let (r, p, _, _) = c.channel_data(&mut sim, 0x4006, b"6c").datagram();
    assert_eq!((r, p), (v6, peer_v6()));

    // Inbound on either relay reaches the one client.
    let got = sim.peer_send(v4, peer_v4(), b"from v4").unwrap();
    assert_eq!(got.to, c.ft);
    assert_eq!(got.data_indication(), (peer_v4(), b"from v4".to_vec()));
    let got = sim.peer_send(v6, peer_v6(), b"from v6").unwrap();
    assert_eq!(got.to, c.ft);
    assert_eq!(got.channel_data(), (0x4006, b"from v6".to_vec()));

    // Deleting releases both relays.
    c.refresh(&mut sim, Some(0), &[]).success();
    let mut released = sim.host.released.clone();
    released.sort();
    assert_eq!(released, vec![v4, v6]);
    assert!(sim.host.live.is_empty());
}

#[test]
fn dual_allocation_expiry_releases_both_relays() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    sim.advance_secs(601);
    assert_eq!(sim.host.released.len(), 2);
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn ipv6_client_gets_an_ipv4_relay_by_default() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("[2001:db8:1::10]:40000");
    let resp = c.allocate(&mut sim, &[]).success();
    assert!(
        resp.relayed()[0].is_ipv4(),
        "RFC 6156: IPv4 unless asked otherwise"
    );
    assert_eq!(resp.mapped(), Some(sa("[2001:db8:1::10]:40000")));
}

#[test]
fn even_port_with_additional_family_needs_no_reservation() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    // With the R bit a port pair would have to span two families: 400.
    c.allocate(&mut sim, &[A::EvenPort(true), A::AdditionalFamily(0x02)])
        .assert_error(400);
    assert_eq!(sim.host.ledger.total(), 0);
    // Without it, the IPv4 relay gets an even port and the IPv6 one any port.
    let resp = c
        .allocate(&mut sim, &[A::EvenPort(false), A::AdditionalFamily(0x02)])
        .success();
    let relayed = resp.relayed();
    assert_eq!(relayed.len(), 2);
    assert_eq!(relayed[0].port() % 2, 0, "{relayed:?}");
}
