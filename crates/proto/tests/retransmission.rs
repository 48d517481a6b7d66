//! Retransmissions (RFC 8489 §6.3.4, RFC 8656 §7.2): a request retransmitted with the
//! same transaction ID gets the very same response for 40 seconds, even when the first
//! one changed state (an Allocate is not made twice; a Refresh 0 still answers success
//! after the allocation is gone). A new transaction ID is a new request.

mod common;

use std::time::Duration;

use common::*;
use turnpike_stun::Method;

/// Signs `attrs` for `method` once and returns the packet (the client has a nonce).
fn signed(c: &mut TestClient, sim: &mut Sim, method: Method, attrs: &[A]) -> Vec<u8> {
    if c.nonce.is_none() {
        c.challenge(sim, method, attrs);
    }
    let tid = c.next_tid();
    c.build_signed(method, tid, attrs)
}

#[test]
fn retransmitted_allocate_gets_the_same_bytes_and_one_allocation() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let packet = signed(&mut c, &mut sim, Method::ALLOCATE, &[UDP]);
    let first = c.send_raw(&mut sim, &packet).reply().success();
    sim.advance_secs(1);
    let again = c.send_raw(&mut sim, &packet).reply();
    assert_eq!(again.0, first.0, "byte-identical");
    sim.advance(Duration::from_millis(38_500));
    let late = c.send_raw(&mut sim, &packet).reply();
    assert_eq!(late.0, first.0, "still within 40 s");
    assert_eq!(sim.server.allocation_count(), 1);
    assert_eq!(sim.host.binds.len(), 1, "one relay bound");
    assert_eq!(sim.host.ledger.total(), 1);

    // After 40 s the transaction is forgotten: processed anew, the 5-tuple is in use.
    sim.advance_secs(1);
    c.send_raw(&mut sim, &packet).reply().assert_error(437);
}

#[test]
fn a_new_transaction_id_is_processed_anew() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let packet = signed(&mut c, &mut sim, Method::ALLOCATE, &[UDP]);
    let first = c.send_raw(&mut sim, &packet).reply().success();
    let other = signed(&mut c, &mut sim, Method::ALLOCATE, &[UDP]);
    let resp = c.send_raw(&mut sim, &other).reply();
    resp.assert_error(437);
    assert_ne!(resp.tid(), first.tid());
    assert_eq!(sim.host.binds.len(), 1);
}

#[test]
fn retransmitted_refresh_zero_answers_success_after_the_deletion() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let packet = signed(&mut c, &mut sim, Method::REFRESH, &[A::Lifetime(0)]);
    let first = c.send_raw(&mut sim, &packet).reply().success();
    assert_eq!(first.lifetime(), Some(0));
    assert_eq!(sim.host.released, vec![relay]);
    sim.advance_secs(5);
    let again = c.send_raw(&mut sim, &packet).reply();
    assert_eq!(again.0, first.0);
    assert_eq!(sim.host.released, vec![relay], "released once");
    assert_eq!(sim.host.bad_releases, 0);
    assert_eq!(sim.server.stats().allocations_closed, 1);
    // A new Refresh sees no allocation.
    c.refresh(&mut sim, Some(0), &[]).assert_error(437);
}

#[test]
fn retransmitted_create_permission_and_channel_bind_get_the_same_bytes() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let perm = signed(
        &mut c,
        &mut sim,
        Method::CREATE_PERMISSION,
        &[A::Peer(peer_v4())],
    );
    let first = c.send_raw(&mut sim, &perm).reply().success();
    sim.advance_secs(2);
    assert_eq!(c.send_raw(&mut sim, &perm).reply().0, first.0);

    let bind = signed(
        &mut c,
        &mut sim,
        Method::CHANNEL_BIND,
        &[A::Channel(0x4000), A::Peer(peer_v4())],
    );
    let first = c.send_raw(&mut sim, &bind).reply().success();
    sim.advance_secs(2);
    assert_eq!(c.send_raw(&mut sim, &bind).reply().0, first.0);

    // Errors are cached the same way.
    let refused = signed(
        &mut c,
        &mut sim,
        Method::CREATE_PERMISSION,
        &[A::Peer(sa("10.0.0.1:1"))],
    );
    let first = c.send_raw(&mut sim, &refused).reply();
    first.assert_error(403);
    assert_eq!(c.send_raw(&mut sim, &refused).reply().0, first.0);
}

#[test]
fn retransmission_is_answered_even_after_the_nonce_expired() {
    let mut sim = Sim::with(|c| c.turn.nonce_lifetime = Duration::from_secs(20));
    let mut c = TestClient::alice("203.0.113.10:40000");
    let packet = signed(&mut c, &mut sim, Method::ALLOCATE, &[UDP]);
    let first = c.send_raw(&mut sim, &packet).reply().success();
    sim.advance_secs(35);
    assert_eq!(c.send_raw(&mut sim, &packet).reply().0, first.0);
}

#[test]
fn same_transaction_id_with_another_method_is_not_a_retransmission() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    let tid = c.next_tid();
    let allocate = c.build_signed(Method::ALLOCATE, tid, &[UDP]);
    c.send_raw(&mut sim, &allocate).reply().success();
    let refresh = c.build_signed(Method::REFRESH, tid, &[A::Lifetime(0)]);
    let resp = c.send_raw(&mut sim, &refresh).reply().success();
    assert_eq!(
        resp.ty().method,
        Method::REFRESH,
        "a Refresh answer, not the cached Allocate"
    );
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn the_cache_is_per_five_tuple() {
    let mut sim = Sim::new();
    let mut a = TestClient::alice("203.0.113.10:40000");
    let packet = signed(&mut a, &mut sim, Method::ALLOCATE, &[UDP]);
    let first = a.send_raw(&mut sim, &packet).reply().success();
    // The same bytes from another 5-tuple are another client's request, never the cached
    // answer: from another port of the same IP (the nonce is bound to the IP) it is a
    // request of its own, a second allocation on another relayed address ...
    let b = TestClient::alice("203.0.113.10:40001");
    let second = b.send_raw(&mut sim, &packet).reply().success();
    assert_ne!(first.relayed(), second.relayed());
    assert_eq!(sim.server.allocation_count(), 2);
    // ... and from another IP the nonce is not its own: 438.
    let c = TestClient::alice("203.0.113.11:40000");
    c.send_raw(&mut sim, &packet).reply().assert_error(438);
    assert_eq!(sim.server.allocation_count(), 2);
}
