//! RFC 6062 §5.4, ConnectionBind: on a new TCP/TLS connection, authenticated, with the
//! CONNECTION-ID of a connection awaiting its bind, it turns that connection into a raw
//! pipe (`BindData`); everything else is 400 (441 for another user). A connection not
//! bound within 30 seconds is closed (§5.2, §5.3), and data connections end with their
//! allocation or either side (§5.5).

mod common;

use std::time::Duration;

use common::*;
use turnpike_proto::{ConnectionId, RelayId};
use turnpike_stun::{IntegrityKind, Method};

fn tcp_on() -> Sim {
    Sim::with(|c| c.turn.tcp_relay = true)
}

/// Alice with a TCP allocation over TCP, and a connection to `peer_v4()` made through
/// Connect and awaiting its bind.
fn connected(sim: &mut Sim) -> (TestClient, RelayId, ConnectionId) {
    let mut c = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    let resp = c.allocate_tcp(sim, &[]).success();
    let relay = sim.host.relay_of(resp.relayed()[0]);
    let (_, outcome) = c.send(sim, Method::CONNECT, &[A::Peer(peer_v4())]);
    assert_eq!(outcome, Outcome::None);
    let id = sim.host.connects.last().unwrap().2;
    sim.peer_connected(id, true).unwrap().1.success();
    (c, relay, id)
}

fn data_connection(client: &str) -> TestClient {
    TestClient::new(tcp(client), ALICE.0, ALICE.1)
}

fn bind(sim: &mut Sim, c: &mut TestClient, id: u32) -> Outcome {
    c.send(sim, Method::CONNECTION_BIND, &[A::Connection(id)]).1
}

#[test]
fn connection_bind_turns_the_connection_into_a_pipe() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    let mut data = data_connection("203.0.113.10:40100");
    let (tid, outcome) = data.send(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)]);
    let (resp, connection) = outcome.bind_data();
    assert_eq!(connection, id);
    assert!(resp.is_success());
    assert_eq!(resp.ty().method, Method::CONNECTION_BIND);
    assert_eq!(resp.tid(), tid);
    assert_eq!(resp.verify(&data.key()), Some(IntegrityKind::Sha1));
    assert_eq!(sim.server.peer_connection_count(), 1);
    // Bound: no bind timeout any more.
    sim.advance_secs(120);
    assert!(sim.host.closed_connections.is_empty());
    assert_eq!(sim.server.peer_connection_count(), 1);
}

#[test]
fn connection_bind_over_tls_works_too() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    let mut data = TestClient::new(tls("203.0.113.10:40100"), ALICE.0, ALICE.1);
    bind(&mut sim, &mut data, id.0).bind_data();
}

#[test]
fn an_unknown_or_missing_connection_id_is_400() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    let mut data = data_connection("203.0.113.10:40100");
    data.request(
        &mut sim,
        Method::CONNECTION_BIND,
        &[A::Connection(id.0 + 1)],
    )
    .assert_error(400);
    data.request(&mut sim, Method::CONNECTION_BIND, &[])
        .assert_error(400);
    data.request(
        &mut sim,
        Method::CONNECTION_BIND,
        &[A::Raw(0x002A, vec![1, 2])],
    )
    .assert_error(400);
    // The right one still binds.
    bind(&mut sim, &mut data, id.0).bind_data();
}

/// RFC 6062 has no place over UDP: from a UDP 5-tuple without an allocation a
/// ConnectionBind gets silence (the source may be spoofed), from one with an allocation
/// a signed 400; either way nothing binds.
#[test]
fn connection_bind_over_udp_binds_nothing() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    let mut data = TestClient::alice("203.0.113.10:40100");
    let (_, got) = data.send(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)]);
    assert_eq!(got, Outcome::None);
    data.allocate(&mut sim, &[]).success();
    data.request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .assert_error(400);
}

#[test]
fn connection_bind_on_a_5_tuple_with_an_allocation_is_400() {
    let mut sim = tcp_on();
    let (mut control, _, id) = connected(&mut sim);
    control
        .request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .assert_error(400);
    // And an unrelated allocation's 5-tuple too.
    let mut other = data_connection("203.0.113.10:40100");
    other.allocate(&mut sim, &[]).success();
    other
        .request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .assert_error(400);
}

#[test]
fn a_connection_still_connecting_cannot_be_bound() {
    let mut sim = tcp_on();
    let mut c = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    c.allocate_tcp(&mut sim, &[]).success();
    c.send(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())]);
    let id = sim.host.connects[0].2;
    let mut data = data_connection("203.0.113.10:40100");
    data.request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .assert_error(400);
}

#[test]
fn a_connection_binds_once() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    let mut first = data_connection("203.0.113.10:40100");
    bind(&mut sim, &mut first, id.0).bind_data();
    let mut second = data_connection("203.0.113.10:40101");
    second
        .request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .assert_error(400);
}

#[test]
fn another_user_is_441() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    let mut bob = TestClient::new(tcp("203.0.113.10:40100"), BOB.0, BOB.1);
    let resp = bob.request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)]);
    resp.assert_error(441);
    assert_eq!(resp.verify(&bob.key()), Some(IntegrityKind::Sha1));
    // Still bindable by its owner.
    bind(&mut sim, &mut data_connection("203.0.113.10:40101"), id.0).bind_data();
}

#[test]
fn no_bind_within_30_seconds_closes_the_peer_connection() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    sim.advance(Duration::from_secs(29));
    assert!(sim.host.closed_connections.is_empty());
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.host.closed_connections, vec![id]);
    assert_eq!(sim.server.peer_connection_count(), 0);
    let mut data = data_connection("203.0.113.10:40100");
    data.request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .assert_error(400);
    assert!(sim.transmits().is_empty(), "nothing to tell the client");
}

#[test]
fn closing_the_client_data_connection_closes_the_peer_one() {
    let mut sim = tcp_on();
    let (mut c, _, id) = connected(&mut sim);
    let mut data = data_connection("203.0.113.10:40100");
    bind(&mut sim, &mut data, id.0).bind_data();
    sim.connection_closed(data.ft);
    assert_eq!(sim.host.closed_connections, vec![id]);
    assert_eq!(sim.server.peer_connection_count(), 0);
    // The allocation itself lives on.
    assert_eq!(sim.server.allocation_count(), 1);
    c.refresh(&mut sim, Some(600), &[]).success();
}

#[test]
fn a_peer_closing_forgets_the_pair() {
    let mut sim = tcp_on();
    let (_, _, id) = connected(&mut sim);
    let mut data = data_connection("203.0.113.10:40100");
    bind(&mut sim, &mut data, id.0).bind_data();
    let now = sim.now();
    sim.server.handle_peer_connection_closed(now, id);
    assert_eq!(sim.server.peer_connection_count(), 0);
    assert!(sim.transmits().is_empty());
    // The data connection's 5-tuple is free again.
    sim.connection_closed(data.ft);
    assert!(
        sim.host.closed_connections.is_empty(),
        "the runtime closed both"
    );
}

#[test]
fn the_allocation_going_closes_every_data_connection() {
    for how in ["refresh 0", "control connection closed", "expiry"] {
        let mut sim = tcp_on();
        let (mut c, relay, bound) = connected(&mut sim);
        let mut data = data_connection("203.0.113.10:40100");
        bind(&mut sim, &mut data, bound.0).bind_data();
        // A second one, pending.
        c.create_permission(&mut sim, &[peer_v4_b()]).success();
        let (pending, attempt) = sim.peer_connects(relay, peer_v4_b());
        assert!(attempt.is_some());
        match how {
            "refresh 0" => {
                c.refresh(&mut sim, Some(0), &[]).success();
            }
            "control connection closed" => sim.connection_closed(c.ft),
            _ => {
                // Refresh the pending one's deadline away: expiry needs 600 s, so bind it.
                let mut d2 = data_connection("203.0.113.10:40101");
                bind(&mut sim, &mut d2, pending.0).bind_data();
                sim.advance_secs(601);
            }
        }
        let mut closed = sim.host.closed_connections.clone();
        closed.sort_by_key(|c| c.0);
        assert_eq!(closed, vec![bound, pending], "{how}");
        assert_eq!(sim.server.peer_connection_count(), 0, "{how}");
        assert_eq!(sim.host.ledger.total(), 0, "{how}");
    }
}

/// With several cores, a ConnectionBind naming another core's connection id (the host
/// says which core made it) is handed to that core untouched; one naming this core's id
/// is served here.
#[test]
fn a_connection_of_another_shard_is_forwarded_to_it() {
    let mut sim = tcp_on();
    sim.host.sharded_connections = true;
    let (_, _, id) = connected(&mut sim);
    assert_eq!(
        id.0 >> 24,
        0,
        "the fake host's ids are this core's (shard 0)"
    );
    let mut data = data_connection("203.0.113.10:40100");
    assert_eq!(bind(&mut sim, &mut data, 0x0300_0001), Outcome::Forward(3));
    assert_eq!(
        sim.server.peer_connection_count(),
        1,
        "nothing changed here"
    );
    let (resp, connection) = bind(&mut sim, &mut data, id.0).bind_data();
    assert!(resp.is_success());
    assert_eq!(connection, id);
}

/// RFC 6062 clients sign the ConnectionBind on their new data connection with the nonce
/// of their control connection (coturn's `turnutils_uclient -T` does, and gives up on a
/// 438): over TCP a nonce is bound to the client's IP, so it works from another port of
/// that IP, and still not from another IP.
#[test]
fn the_control_connections_nonce_signs_the_connection_bind() {
    let mut sim = tcp_on();
    let (control, _, id) = connected(&mut sim);
    let mut data = data_connection("203.0.113.10:40100");
    data.realm = control.realm.clone();
    data.nonce = control.nonce.clone();
    let tid = data.next_tid();
    let packet = data.build_signed(Method::CONNECTION_BIND, tid, &[A::Connection(id.0)]);
    let (resp, connection) = data.send_raw(&mut sim, &packet).bind_data();
    assert!(resp.is_success());
    assert_eq!(connection, id);
    // From another IP the same nonce is stale.
    let mut thief = data_connection("203.0.113.99:40100");
    thief.realm = control.realm.clone();
    thief.nonce = control.nonce;
    let tid = thief.next_tid();
    let packet = thief.build_signed(Method::CONNECTION_BIND, tid, &[A::Connection(id.0)]);
    let Outcome::Reply(resp) = thief.send_raw(&mut sim, &packet) else {
        panic!("a 438 answer");
    };
    resp.assert_error(438);
}
