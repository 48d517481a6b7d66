//! Over TCP or TLS an allocation lives as long as its connection (RFC 8656 §3.1, §5):
//! `handle_connection_closed` deletes it, releasing its relays and its quota slot.

mod common;

use common::*;
use turnpike_stun::Method;

#[test]
fn closing_the_connection_deletes_its_allocation() {
    let mut sim = Sim::new();
    let mut c = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    let resp = c.allocate(&mut sim, &[A::AdditionalFamily(0x02)]).success();
    let v4 = sim.host.relay_of(resp.relayed()[0]);
    let v6 = sim.host.relay_of(resp.relayed()[1]);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert_eq!(sim.host.ledger.total(), 1);

    sim.connection_closed(c.ft);

    assert_eq!(sim.server.allocation_count(), 0);
    let mut released = sim.host.released.clone();
    released.sort();
    assert_eq!(released, vec![v4, v6], "both relays released");
    assert!(sim.host.live.is_empty());
    assert_eq!(sim.host.ledger.total(), 0, "quota slot given back");
    assert_eq!(sim.host.slots_held(), 0);
    assert_eq!(sim.server.stats().allocations_closed, 1);
    // Nothing is relayed for it any more.
    assert_eq!(sim.peer_send(v4, peer_v4(), b"late"), None);
    assert_eq!(sim.host.bad_releases, 0);
    assert_eq!(sim.host.bad_allocation_releases, 0);
}

#[test]
fn closing_a_tls_connection_deletes_its_allocation() {
    let mut sim = Sim::new();
    let mut c = TestClient::new(tls("203.0.113.10:40000"), BOB.0, BOB.1);
    let (_, relay) = c.allocate_ok(&mut sim);
    sim.connection_closed(c.ft);
    assert_eq!(sim.host.released, vec![relay]);
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn closing_another_connection_touches_nothing() {
    let mut sim = Sim::new();
    let mut a = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    a.allocate_ok(&mut sim);
    // Same client address, other port; same address over TLS: other 5-tuples.
    sim.connection_closed(tcp("203.0.113.10:40001"));
    sim.connection_closed(tls("203.0.113.10:40000"));
    sim.connection_closed(udp("203.0.113.10:40000"));
    assert_eq!(sim.server.allocation_count(), 1);
    assert!(sim.host.released.is_empty());
    a.refresh(&mut sim, Some(600), &[]).success();
    // Twice is harmless.
    sim.connection_closed(a.ft);
    sim.connection_closed(a.ft);
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.bad_releases, 0);
    assert_eq!(sim.host.bad_allocation_releases, 0);
}

#[test]
fn a_new_connection_from_the_same_address_starts_afresh() {
    let mut sim = Sim::new();
    let mut a = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    a.allocate_ok(&mut sim);
    sim.connection_closed(a.ft);
    // A reconnect that reuses the port is a new 5-tuple as far as allocations go.
    a.refresh(&mut sim, Some(600), &[]).assert_error(437);
    a.request(&mut sim, Method::ALLOCATE, &[UDP]).success();
    assert_eq!(sim.server.allocation_count(), 1);
}

#[test]
fn a_new_connection_on_the_same_5_tuple_is_not_answered_from_the_old_ones_cache() {
    let mut sim = Sim::new();
    let mut c = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    let tid = c.next_tid();
    let packet = c.build_signed(Method::ALLOCATE, tid, &[UDP]);
    c.send_raw(&mut sim, &packet).reply().success();
    sim.connection_closed(c.ft);
    assert_eq!(sim.server.allocation_count(), 0);
    // The same request on a new connection that reuses the port: served afresh, not
    // replayed from the transaction cache of the closed connection.
    c.send_raw(&mut sim, &packet).reply().success();
    assert_eq!(sim.server.allocation_count(), 1);
    assert_eq!(sim.host.ledger.total(), 1);
}
