//! ALTERNATE-SERVER (RFC 8489 §10): an Allocate that would fail for lack of capacity
//! (508), or every new Allocate while redirecting, gets 300 Try Alternate with an
//! ALTERNATE-SERVER of the client's transport and address family, round-robin, signed
//! like every answer to an authenticated request; ALTERNATE-DOMAIN for TLS (§14.16).

mod common;

use common::*;
use turnpike_proto::Alternates;
use turnpike_stun::IntegrityKind;

fn alternates() -> Alternates {
    Alternates {
        udp: vec![
            sa("198.51.100.20:3478"),
            sa("[2001:db8:20::1]:3478"),
            sa("198.51.100.21:3478"),
        ],
        tcp: vec![sa("198.51.100.30:3478")],
        tls: vec![sa("198.51.100.40:5349")],
        ..Alternates::default()
    }
}

fn redirecting() -> Sim {
    Sim::with(|c| {
        c.alternates = alternates();
        c.alternates.redirect = true;
    })
}

#[test]
fn redirect_answers_300_with_a_signed_alternate_and_allocates_nothing() {
    let mut sim = redirecting();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[]);
    resp.assert_error(300);
    assert_eq!(resp.alternate_servers(), vec![sa("198.51.100.20:3478")]);
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1), "signed");
    assert_eq!(resp.alternate_domain(), None, "not for UDP");
    assert_eq!(sim.server.allocation_count(), 0);
    assert!(sim.host.binds.is_empty(), "no relay bound");
    assert_eq!(sim.host.ledger.total(), 0, "no quota slot taken");
    assert_eq!(sim.server.stats().redirected, 1);
}

#[test]
fn alternates_are_handed_out_round_robin_within_the_family() {
    let mut sim = redirecting();
    let mut got = Vec::new();
    for i in 0..4u16 {
        let mut c = TestClient::alice(&format!("203.0.113.10:{}", 40000 + i));
        let resp = c.allocate(&mut sim, &[]);
        resp.assert_error(300);
        got.extend(resp.alternate_servers());
    }
    // The IPv6 alternate is never given to an IPv4 client.
    assert_eq!(
        got,
        vec![
            sa("198.51.100.20:3478"),
            sa("198.51.100.21:3478"),
            sa("198.51.100.20:3478"),
            sa("198.51.100.21:3478"),
        ]
    );
}

#[test]
fn an_ipv6_client_gets_an_ipv6_alternate() {
    let mut sim = redirecting();
    let mut c = TestClient::alice("[2001:db8:1::10]:40000");
    let resp = c.allocate(&mut sim, &[]);
    resp.assert_error(300);
    assert_eq!(resp.alternate_servers(), vec![sa("[2001:db8:20::1]:3478")]);
}

#[test]
fn without_an_alternate_of_the_clients_family_the_allocate_is_served() {
    let mut sim = Sim::with(|c| {
        c.alternates.udp = vec![sa("198.51.100.20:3478")];
        c.alternates.redirect = true;
    });
    let mut c = TestClient::alice("[2001:db8:1::10]:40000");
    c.allocate(&mut sim, &[]).success();
    assert_eq!(sim.server.stats().redirected, 0);
}

#[test]
fn each_transport_uses_its_own_list_and_tls_gets_alternate_domain() {
    let mut sim = Sim::with(|c| {
        c.alternates = alternates();
        c.alternates.domain = Some("turn2.example.net".into());
        c.alternates.redirect = true;
    });
    let mut t = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    let resp = t.allocate(&mut sim, &[]);
    resp.assert_error(300);
    assert_eq!(resp.alternate_servers(), vec![sa("198.51.100.30:3478")]);
    assert_eq!(resp.alternate_domain(), None);

    let mut s = TestClient::new(tls("203.0.113.10:40001"), ALICE.0, ALICE.1);
    let resp = s.allocate(&mut sim, &[]);
    resp.assert_error(300);
    assert_eq!(resp.alternate_servers(), vec![sa("198.51.100.40:5349")]);
    assert_eq!(
        resp.alternate_domain().as_deref(),
        Some("turn2.example.net")
    );
    assert_eq!(resp.verify(&s.key()), Some(IntegrityKind::Sha1));

    let mut u = TestClient::alice("203.0.113.10:40002");
    let resp = u.allocate(&mut sim, &[]);
    resp.assert_error(300);
    assert_eq!(
        resp.alternate_domain(),
        None,
        "ALTERNATE-DOMAIN is for TLS only"
    );
}

#[test]
fn a_transport_without_alternates_is_not_redirected() {
    let mut sim = Sim::with(|c| {
        c.alternates.udp = vec![sa("198.51.100.20:3478")];
        c.alternates.redirect = true;
    });
    let mut t = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    t.allocate(&mut sim, &[]).success();
}

#[test]
fn the_300_comes_only_after_authentication() {
    let mut sim = redirecting();
    let mut c = TestClient::alice("203.0.113.10:40000");
    // Unsigned: the challenge, not the alternate (nothing leaks to strangers).
    let first = c.challenge(&mut sim, turnpike_stun::Method::ALLOCATE, &[UDP]);
    first.assert_error(401);
    assert!(first.alternate_servers().is_empty());
    // Wrong password: 401 again.
    let mut wrong = TestClient::new(udp("203.0.113.10:40001"), ALICE.0, "nope");
    wrong.allocate(&mut sim, &[]).assert_error(401);
    assert_eq!(sim.server.stats().redirected, 0);
}

#[test]
fn set_redirect_drains_new_allocations_and_keeps_existing_ones() {
    let mut sim = Sim::with(|c| c.alternates = alternates());
    let (mut old, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    old.create_permission(&mut sim, &[peer_v4()]).success();

    sim.server.set_redirect(true);
    assert!(sim.server.redirecting());
    let mut new = TestClient::alice("203.0.113.10:40001");
    new.allocate(&mut sim, &[]).assert_error(300);
    // The existing allocation is untouched: it refreshes, relays, and a second Allocate
    // on its 5-tuple is still a 437, not a redirect.
    old.refresh(&mut sim, Some(600), &[]).success();
    assert!(sim.peer_send(relay, peer_v4(), b"still here").is_some());
    old.allocate(&mut sim, &[]).assert_error(437);

    sim.server.set_redirect(false);
    new.allocate(&mut sim, &[]).success();
}

#[test]
fn total_quota_full_redirects_instead_of_508() {
    let mut sim = Sim::with(|c| {
        c.alternates = alternates();
        c.quotas.allocations_total = 1;
    });
    allocated_alice(&mut sim, "203.0.113.10:40000");
    let mut bob = TestClient::bob("203.0.113.10:40001");
    let resp = bob.allocate(&mut sim, &[]);
    resp.assert_error(300);
    assert_eq!(resp.alternate_servers(), vec![sa("198.51.100.20:3478")]);
    assert_eq!(resp.verify(&bob.key()), Some(IntegrityKind::Sha1));
    assert_eq!(sim.host.ledger.total(), 1);
}

#[test]
fn total_quota_full_without_alternates_is_still_508() {
    let mut sim = Sim::with(|c| c.quotas.allocations_total = 1);
    allocated_alice(&mut sim, "203.0.113.10:40000");
    TestClient::bob("203.0.113.10:40001")
        .allocate(&mut sim, &[])
        .assert_error(508);
    // An IPv6 client with only IPv4 alternates: 508 as well.
    let mut sim = Sim::with(|c| {
        c.alternates.udp = vec![sa("198.51.100.20:3478")];
        c.quotas.allocations_total = 1;
    });
    allocated_alice(&mut sim, "203.0.113.10:40000");
    TestClient::bob("[2001:db8:1::10]:40001")
        .allocate(&mut sim, &[])
        .assert_error(508);
}

#[test]
fn relay_port_exhaustion_redirects_and_gives_the_quota_slot_back() {
    let mut sim = Sim::with(|c| c.alternates = alternates());
    sim.host.port_limit = 1;
    allocated_alice(&mut sim, "203.0.113.10:40000");
    let mut bob = TestClient::bob("203.0.113.10:40001");
    bob.allocate(&mut sim, &[]).assert_error(300);
    assert_eq!(sim.host.ledger.total(), 1, "bob's slot was given back");
    assert_eq!(sim.host.slots_held(), 1);
}

#[test]
fn the_per_user_quota_is_not_redirected() {
    let mut sim = Sim::with(|c| {
        c.alternates = alternates();
        c.quotas.allocations_per_user = 1;
    });
    allocated_alice(&mut sim, "203.0.113.10:40000");
    TestClient::alice("203.0.113.10:40001")
        .allocate(&mut sim, &[])
        .assert_error(486);
}

#[test]
fn an_unknown_reservation_token_is_508_not_a_redirect() {
    // The token names a port on this server: another server cannot honour it.
    let mut sim = Sim::with(|c| c.alternates = alternates());
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Token([7; 8])]).assert_error(508);
}
