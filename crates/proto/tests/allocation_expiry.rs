//! Allocations expire after their lifetime (RFC 8656 §2.2, §7.2) in virtual time: the
//! relay socket is released and the quota slot freed; a refreshed one survives.

mod common;

use common::*;

#[test]
fn allocation_expires_after_its_lifetime() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert!(sim.server.poll_timeout().is_some(), "a sweep is scheduled");

    sim.advance_secs(599);
    assert_eq!(sim.server.allocation_count(), 1);
    assert!(sim.host.released.is_empty());

    sim.advance_secs(2);
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.released, vec![relay]);
    assert!(sim.host.live.is_empty());
    assert_eq!(sim.host.ledger.total(), 0, "ledger slot freed");
    assert_eq!(sim.server.stats().allocations_closed, 1);
    assert_eq!(
        sim.server.poll_timeout(),
        None,
        "an idle server has no deadline"
    );
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);

    // The 5-tuple can allocate again.
    c.refresh(&mut sim, None, &[]).assert_error(437);
    c.allocate(&mut sim, &[]).success();
    assert_eq!(sim.host.bad_releases, 0);
    assert_eq!(sim.host.bad_allocation_releases, 0);
}

#[test]
fn requested_lifetime_governs_expiry() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    assert_eq!(
        c.allocate(&mut sim, &[A::Lifetime(1000)])
            .success()
            .lifetime(),
        Some(1000)
    );
    sim.advance_secs(999);
    assert_eq!(sim.server.allocation_count(), 1);
    sim.advance_secs(2);
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn refreshed_allocation_survives_and_then_expires() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    sim.advance_secs(500);
    c.refresh(&mut sim, Some(600), &[]).success();
    sim.advance_secs(200); // 700 s: past the first lifetime
    assert_eq!(sim.server.allocation_count(), 1);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert!(sim.peer_send(relay, peer_v4(), b"alive").is_some());
    sim.advance_secs(399); // 1099 s
    assert_eq!(sim.server.allocation_count(), 1);
    sim.advance_secs(2); // 1101 s
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.released, vec![relay]);
}

#[test]
fn expiry_frees_the_per_user_quota() {
    let mut sim = Sim::with(|c| c.quotas.allocations_per_user = 1);
    let (_, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let mut second = TestClient::alice("203.0.113.10:40001");
    second.allocate(&mut sim, &[]).assert_error(486);
    sim.advance_secs(601);
    second.allocate(&mut sim, &[]).success();
}

#[test]
fn many_allocations_expire_independently() {
    let mut sim = Sim::new();
    let mut clients = Vec::new();
    for i in 0..20u16 {
        let mut c = TestClient::alice(&format!("203.0.113.10:{}", 41000 + i));
        c.allocate(&mut sim, &[]).success();
        clients.push(c);
        sim.advance_secs(10);
    }
    // The first was made at 0 s, the last at 190 s; now it is 200 s.
    sim.advance_secs(405); // 605 s: only the first (made at 0 s) is gone
    assert_eq!(sim.server.allocation_count(), 19);
    sim.advance_secs(100); // 705 s: those made up to 100 s are gone
    assert_eq!(sim.server.allocation_count(), 9);
    sim.advance_secs(100); // 805 s: all gone
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.released.len(), 20);
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn a_late_sweep_never_extends_an_allocation() {
    // A runtime whose timer fires late (an overloaded worker) must not keep an expired
    // allocation usable: expiry is checked on every use, not only by the sweep.
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    sim.elapsed += std::time::Duration::from_secs(601); // no handle_timeout
    assert_eq!(sim.server.allocation_count(), 1, "not swept yet");

    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );
    assert_eq!(c.channel_data(&mut sim, 0x4000, b"x"), Outcome::None);
    c.refresh(&mut sim, Some(600), &[]).assert_error(437);
    c.create_permission(&mut sim, &[peer_v4()])
        .assert_error(437);

    // The 5-tuple may allocate again right away; the dead allocation goes first.
    c.allocate(&mut sim, &[]).success();
    assert_eq!(sim.host.released, vec![relay]);
    assert_eq!(sim.server.allocation_count(), 1);
    assert_eq!(sim.host.ledger.total(), 1);
    assert_eq!(sim.host.bad_releases, 0);
}

#[test]
fn strict_credential_expiry_is_enforced_between_sweeps() {
    let mut sim = Sim::with(|c| c.turn.strict_expiry = true);
    let mut c = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX + 300);
    let relayed = c.allocate(&mut sim, &[]).success().relayed()[0];
    let relay = sim.host.relay_of(relayed);
    sim.advance_secs(200);
    c.create_permission(&mut sim, &[peer_v4()]).success(); // valid until 500 s
    assert!(sim.peer_send(relay, peer_v4(), b"x").is_some());
    sim.elapsed += std::time::Duration::from_secs(101); // 301 s, no handle_timeout
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );
}
