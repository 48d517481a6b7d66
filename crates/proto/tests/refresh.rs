//! Refresh (RFC 8656 §8.2): a new lifetime, 0 to delete, and who may refresh.

mod common;

use std::time::Duration;

use common::*;
use turnpike_stun::{IntegrityKind, Method};

#[test]
fn refresh_sets_a_new_lifetime() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    sim.advance_secs(500);
    let resp = c.refresh(&mut sim, Some(1800), &[]).success();
    assert_eq!(resp.ty().method, Method::REFRESH);
    assert_eq!(resp.lifetime(), Some(1800));
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    // Without LIFETIME: the default.
    assert_eq!(
        c.refresh(&mut sim, None, &[]).success().lifetime(),
        Some(600)
    );
    // Below the default: the default.
    assert_eq!(
        c.refresh(&mut sim, Some(10), &[]).success().lifetime(),
        Some(600)
    );
    // The last refresh counts: alive at +599 s, gone at +601 s.
    sim.advance_secs(599);
    assert_eq!(sim.server.allocation_count(), 1);
    sim.advance_secs(2);
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn refresh_is_capped_by_max_lifetime() {
    let mut sim = Sim::with(|c| c.turn.max_lifetime = Duration::from_secs(900));
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    assert_eq!(
        c.refresh(&mut sim, Some(u32::MAX), &[])
            .success()
            .lifetime(),
        Some(900)
    );
}

#[test]
fn lifetime_zero_deletes_the_allocation() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();

    let resp = c.refresh(&mut sim, Some(0), &[]).success();
    assert_eq!(resp.lifetime(), Some(0));
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.released, vec![relay]);
    assert!(sim.host.live.is_empty());
    assert_eq!(sim.host.ledger.total(), 0);
    assert_eq!(sim.server.stats().allocations_closed, 1);

    // Gone for every later request and for peers.
    c.refresh(&mut sim, None, &[]).assert_error(437);
    c.refresh(&mut sim, Some(0), &[]).assert_error(437);
    c.create_permission(&mut sim, &[peer_v4()])
        .assert_error(437);
    c.channel_bind(&mut sim, 0x4000, peer_v4())
        .assert_error(437);
    assert_eq!(sim.peer_send(relay, peer_v4(), b"late"), None);
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );

    // The 5-tuple is free again.
    c.allocate(&mut sim, &[]).success();
}

#[test]
fn refresh_without_allocation_is_437() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.refresh(&mut sim, Some(600), &[]).assert_error(437);
    // Another 5-tuple's allocation does not count.
    let (_, _) = allocated_alice(&mut sim, "203.0.113.10:40001");
    c.refresh(&mut sim, Some(600), &[]).assert_error(437);
}

#[test]
fn refresh_with_another_users_credentials_is_441() {
    let mut sim = Sim::new();
    let (mut alice, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let mut bob = TestClient::bob("203.0.113.10:40000");
    let resp = bob.refresh(&mut sim, Some(0), &[]);
    resp.assert_error(441);
    assert_eq!(
        resp.verify(&bob.key()),
        Some(IntegrityKind::Sha1),
        "signed with bob's key"
    );
    assert_eq!(sim.server.allocation_count(), 1, "not deleted by bob");
    bob.create_permission(&mut sim, &[peer_v4()])
        .assert_error(441);
    bob.channel_bind(&mut sim, 0x4000, peer_v4())
        .assert_error(441);
    alice.refresh(&mut sim, Some(0), &[]).success();
}

#[test]
fn requested_family_the_allocation_lacks_is_443() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.refresh(&mut sim, Some(600), &[A::RequestedFamily(0x02)])
        .assert_error(443);
    c.refresh(&mut sim, Some(600), &[A::RequestedFamily(0x01)])
        .success();

    let mut v6 = TestClient::alice("203.0.113.10:40001");
    v6.allocate(&mut sim, &[A::RequestedFamily(0x02)]).success();
    v6.refresh(&mut sim, Some(600), &[A::RequestedFamily(0x01)])
        .assert_error(443);
    v6.refresh(&mut sim, Some(600), &[A::RequestedFamily(0x02)])
        .success();
    assert_eq!(sim.server.allocation_count(), 2);
}

#[test]
fn malformed_lifetime_is_400() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.request(&mut sim, Method::REFRESH, &[A::Raw(0x000D, vec![0, 0])])
        .assert_error(400);
    assert_eq!(sim.server.allocation_count(), 1);
}
