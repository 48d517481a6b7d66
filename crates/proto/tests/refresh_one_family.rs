//! Refresh with REQUESTED-ADDRESS-FAMILY on a dual allocation (RFC 8656 §8.1, §8.2, which
//! took over RFC 6156): LIFETIME 0 deletes that family's relayed address only, with its
//! permissions and channels, and leaves the other family's alone.

mod common;

use common::*;

#[test]
fn lifetime_zero_with_a_family_deletes_only_that_half() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    let v4 = sim.host.relay_of(resp.relayed()[0]);
    let v6 = sim.host.relay_of(resp.relayed()[1]);
    c.create_permission(&mut sim, &[peer_v4(), peer_v6()])
        .success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    c.channel_bind(&mut sim, 0x4001, peer_v6()).success();

    let resp = c
        .refresh(&mut sim, Some(0), &[A::RequestedFamily(0x02)])
        .success();
    assert_eq!(resp.lifetime(), Some(0));
    assert_eq!(sim.host.released, vec![v6], "only the IPv6 relay");
    assert_eq!(sim.server.allocation_count(), 1);
    assert_eq!(sim.host.ledger.total(), 1);

    // The IPv4 half works as before.
    assert_eq!(
        sim.peer_send(v4, peer_v4(), b"v4").unwrap().channel_data(),
        (0x4000, b"v4".to_vec())
    );
    let (r, _, _, _) = c.channel_data(&mut sim, 0x4000, b"out").datagram();
    assert_eq!(r, v4);
    // The IPv6 half is gone: its family is now a mismatch, its channel unusable.
    assert_eq!(c.channel_data(&mut sim, 0x4001, b"x"), Outcome::None);
    assert_eq!(
        c.send_indication(&mut sim, peer_v6(), b"x", &[]),
        Outcome::None
    );
    c.create_permission(&mut sim, &[peer_v6()])
        .assert_error(443);
    c.refresh(&mut sim, Some(600), &[A::RequestedFamily(0x02)])
        .assert_error(443);
    c.refresh(&mut sim, Some(600), &[A::RequestedFamily(0x01)])
        .success();

    // Deleting the last family deletes the allocation.
    c.refresh(&mut sim, Some(0), &[A::RequestedFamily(0x01)])
        .success();
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.released, vec![v6, v4]);
    assert_eq!(sim.host.ledger.total(), 0);
    assert_eq!(sim.host.bad_releases, 0);
}

#[test]
fn deleting_the_ipv4_half_keeps_the_ipv6_one() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    let v4 = sim.host.relay_of(resp.relayed()[0]);
    let v6 = sim.host.relay_of(resp.relayed()[1]);
    c.create_permission(&mut sim, &[peer_v4(), peer_v6()])
        .success();
    c.refresh(&mut sim, Some(0), &[A::RequestedFamily(0x01)])
        .success();
    assert_eq!(sim.host.released, vec![v4]);
    assert!(sim.peer_send(v6, peer_v6(), b"v6").is_some());
    assert_eq!(sim.peer_send(v4, peer_v4(), b"v4"), None);
    // Expiry releases what is left, once.
    sim.advance_secs(601);
    assert_eq!(sim.host.released, vec![v4, v6]);
    assert_eq!(sim.host.bad_releases, 0);
}

#[test]
fn without_a_family_lifetime_zero_deletes_both() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    c.refresh(&mut sim, Some(0), &[]).success();
    assert_eq!(sim.host.released.len(), 2);
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn a_single_family_allocation_is_deleted_whole() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.refresh(&mut sim, Some(0), &[A::RequestedFamily(0x01)])
        .success();
    assert_eq!(sim.host.released, vec![relay]);
    assert_eq!(sim.server.allocation_count(), 0);
}
