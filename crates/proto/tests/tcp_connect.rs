//! RFC 6062 §5.2, Connect: 437 / 441 / 400 / 443 / 403 checks, 446 for a connection to
//! the same peer that exists or is being made, the host opens the connection and its
//! outcome answers the Connect (success with CONNECTION-ID, or 447), and 447 after 30
//! seconds without an outcome.

mod common;

use std::time::Duration;

use common::*;
use turnpike_proto::ConnectionId;
use turnpike_stun::{Class, IntegrityKind, Method};

fn tcp_on() -> Sim {
    Sim::with(|c| c.turn.tcp_relay = true)
}

/// A TCP allocation of alice over TCP: the client and its relay.
fn tcp_allocated(sim: &mut Sim, client: &str) -> (TestClient, turnpike_proto::RelayId) {
    let mut c = TestClient::new(tcp(client), ALICE.0, ALICE.1);
    let resp = c.allocate_tcp(sim, &[]).success();
    let relay = sim.host.relay_of(resp.relayed()[0]);
    (c, relay)
}

fn connect(sim: &mut Sim, c: &mut TestClient, peer: std::net::SocketAddr) -> Outcome {
    c.send(sim, Method::CONNECT, &[A::Peer(peer)]).1
}

#[test]
fn connect_succeeds_with_the_connection_id_the_host_chose() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    let (tid, outcome) = c.send(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())]);
    assert_eq!(
        outcome,
        Outcome::None,
        "answered when the connection is made"
    );
    assert_eq!(sim.host.connects.len(), 1);
    let (from, peer, id) = sim.host.connects[0];
    assert_eq!((from, peer), (relay, peer_v4()));
    assert_eq!(sim.server.peer_connection_count(), 1);

    let (to, resp) = sim.peer_connected(id, true).expect("the Connect response");
    assert_eq!(to, c.ft);
    assert!(resp.is_success());
    assert_eq!(resp.ty().method, Method::CONNECT);
    assert_eq!(resp.tid(), tid);
    assert_eq!(resp.connection_id(), Some(id));
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    assert_eq!(sim.server.stats().peer_connections, 1);
    // Reported twice: the second is not a Connect in progress any more.
    assert_eq!(sim.peer_connected(id, true), None);
}

#[test]
fn connect_answers_with_the_clients_integrity_and_fingerprint() {
    let mut sim = tcp_on();
    let mut c = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    c.algorithm = turnpike_stun::attr::PasswordAlgorithmId::SHA256;
    c.fingerprint = true;
    c.allocate_tcp(&mut sim, &[]).success();
    connect(&mut sim, &mut c, peer_v4());
    let id = sim.host.connects[0].2;
    let (_, resp) = sim.peer_connected(id, true).unwrap();
    assert!(matches!(
        resp.verify(&c.key()),
        Some(IntegrityKind::Sha256 { .. })
    ));
    assert!(resp.msg().verify_fingerprint().unwrap());
}

#[test]
fn connect_without_an_allocation_is_437_and_for_another_user_441() {
    let mut sim = tcp_on();
    let mut nobody = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    nobody
        .request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(437);
    let (_, _) = tcp_allocated(&mut sim, "203.0.113.10:40001");
    let mut bob = TestClient::new(tcp("203.0.113.10:40001"), BOB.0, BOB.1);
    bob.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(441);
    assert!(sim.host.connects.is_empty());
}

#[test]
fn a_missing_or_bad_peer_is_400_a_family_mismatch_443_a_forbidden_peer_403() {
    let mut sim = tcp_on();
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    c.request(&mut sim, Method::CONNECT, &[]).assert_error(400);
    c.request(
        &mut sim,
        Method::CONNECT,
        &[A::Raw(0x0012, vec![0, 9, 0, 1])],
    )
    .assert_error(400);
    c.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v6())])
        .assert_error(443);
    for forbidden in ["10.0.0.1:80", "127.0.0.1:22", "169.254.169.254:80"] {
        c.request(&mut sim, Method::CONNECT, &[A::Peer(sa(forbidden))])
            .assert_error(403);
    }
    assert!(sim.host.connects.is_empty());
}

#[test]
fn a_second_connect_to_the_same_peer_is_446_while_pending_or_active() {
    let mut sim = tcp_on();
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    assert_eq!(connect(&mut sim, &mut c, peer_v4()), Outcome::None);
    // Being made.
    c.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(446);
    let id = sim.host.connects[0].2;
    sim.peer_connected(id, true).unwrap();
    // Made, waiting for its bind.
    c.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(446);
    // Bound.
    let mut data = TestClient::new(tcp("203.0.113.10:40100"), ALICE.0, ALICE.1);
    data.send(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .1
        .bind_data();
    c.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(446);
    // Another port of the same host is another peer; an IPv4-mapped form is the same.
    assert_eq!(connect(&mut sim, &mut c, sa("8.8.8.8:5001")), Outcome::None);
    c.request(
        &mut sim,
        Method::CONNECT,
        &[A::Peer(sa("[::ffff:8.8.8.8]:5000"))],
    )
    .assert_error(446);
    assert_eq!(sim.host.connects.len(), 2);
    // Gone: a new Connect is fine.
    sim.connection_closed(data.ft);
    assert_eq!(connect(&mut sim, &mut c, peer_v4()), Outcome::None);
}

#[test]
fn a_failed_connection_is_447_and_frees_the_peer() {
    let mut sim = tcp_on();
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    let (tid, _) = c.send(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())]);
    let id = sim.host.connects[0].2;
    let (to, resp) = sim.peer_connected(id, false).expect("the 447");
    assert_eq!(to, c.ft);
    resp.assert_error(447);
    assert_eq!(resp.tid(), tid);
    assert_eq!(resp.ty().class, Class::Error);
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    assert_eq!(sim.server.peer_connection_count(), 0);
    assert_eq!(connect(&mut sim, &mut c, peer_v4()), Outcome::None);
}

#[test]
fn a_connection_that_cannot_start_is_447_at_once() {
    let mut sim = tcp_on();
    sim.host.connect_fails = true;
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    c.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(447);
    assert_eq!(sim.server.peer_connection_count(), 0);
}

#[test]
fn no_outcome_within_30_seconds_is_447() {
    let mut sim = tcp_on();
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    let (tid, _) = c.send(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())]);
    let id = sim.host.connects[0].2;
    sim.advance(Duration::from_secs(29));
    assert!(sim.transmits().is_empty());
    assert!(sim.host.closed_connections.is_empty());
    sim.advance(Duration::from_secs(2));
    let sent = sim.transmits();
    assert_eq!(sent.len(), 1);
    let (to, resp) = &sent[0];
    assert_eq!(*to, c.ft);
    resp.assert_error(447);
    assert_eq!(resp.tid(), tid);
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    // The host is told to give up, and a late success is refused (closed).
    assert_eq!(sim.host.closed_connections, vec![id]);
    assert_eq!(sim.peer_connected(id, true), None);
    assert_eq!(sim.server.peer_connection_count(), 0);
    assert!(sim.transmits().is_empty(), "sent once");
}

#[test]
fn the_connection_limit_is_508() {
    let mut sim = Sim::with(|c| {
        c.turn.tcp_relay = true;
        c.quotas.tcp_connections_per_allocation = 2;
    });
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    connect(&mut sim, &mut c, sa("8.8.8.8:1"));
    connect(&mut sim, &mut c, sa("8.8.8.8:2"));
    c.request(&mut sim, Method::CONNECT, &[A::Peer(sa("8.8.8.8:3"))])
        .assert_error(508);
    let id = sim.host.connects[0].2;
    sim.peer_connected(id, false).unwrap();
    assert_eq!(connect(&mut sim, &mut c, sa("8.8.8.8:3")), Outcome::None);
}

#[test]
fn deleting_the_allocation_abandons_a_pending_connect() {
    let mut sim = tcp_on();
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    connect(&mut sim, &mut c, peer_v4());
    let id = sim.host.connects[0].2;
    c.refresh(&mut sim, Some(0), &[]).success();
    assert_eq!(sim.host.closed_connections, vec![id]);
    assert_eq!(sim.peer_connected(id, true), None, "close it");
    sim.advance_secs(31);
    assert!(sim.transmits().is_empty(), "no 447 for a gone allocation");
}

#[test]
fn a_peer_closing_while_connecting_is_447() {
    let mut sim = tcp_on();
    let (mut c, _) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    connect(&mut sim, &mut c, peer_v4());
    let id = sim.host.connects[0].2;
    let now = sim.now();
    sim.server.handle_peer_connection_closed(now, id);
    let sent = sim.transmits();
    assert_eq!(sent.len(), 1);
    sent[0].1.assert_error(447);
    assert_eq!(sim.server.peer_connection_count(), 0);
    // Unknown ids are ignored.
    sim.server
        .handle_peer_connection_closed(now, ConnectionId(12345));
    assert!(sim.transmits().is_empty());
}

/// Two relays connecting to each other at once (two clients of one server, each
/// Connecting to the other's relayed address): the peer's connection reaches this relay
/// while its own Connect to that peer is under way. That connection answers the Connect
/// (success with its CONNECTION-ID, no ConnectionAttempt), and the relay's own attempt,
/// whose 4-tuple is then taken, is forgotten: its failure gets no 447.
#[test]
fn a_peer_connecting_while_we_connect_to_it_answers_the_connect() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    let (tid, outcome) = c.send(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())]);
    assert_eq!(outcome, Outcome::None);
    let (_, _, attempt) = sim.host.connects[0];
    // No permission is needed: the Connect asked for this peer.
    let (inbound, got) = sim.peer_connects(relay, peer_v4());
    let (to, resp) = got.expect("the Connect's answer");
    assert_eq!(to, c.ft);
    assert!(resp.is_success());
    assert_eq!(resp.ty().method, Method::CONNECT);
    assert_eq!(resp.tid(), tid);
    assert_eq!(resp.connection_id(), Some(inbound));
    assert_eq!(sim.server.peer_connection_count(), 1);
    // The relay's own attempt fails (4-tuple taken): nothing more for the client.
    assert_eq!(sim.peer_connected(attempt, false), None);
    assert!(sim.transmits().is_empty());
    // The adopted connection binds as usual.
    let mut data = TestClient::new(tcp("203.0.113.10:40100"), ALICE.0, ALICE.1);
    let (resp, connection) = data
        .send(
            &mut sim,
            Method::CONNECTION_BIND,
            &[A::Connection(inbound.0)],
        )
        .1
        .bind_data();
    assert!(resp.is_success());
    assert_eq!(connection, inbound);
}

/// A host that breaks its contract and names a new inbound connection with the id of a
/// Connect attempt the core forgot (the peer's own connection answered that Connect),
/// then reports the attempt's outcome: the runtime closes that id, so the core keeps
/// nothing under it, and a ConnectionBind naming it is a 400, not a bind to a closed
/// connection. Found by `core_sequence` (fuzz/corpus/core_sequence/regression-6062-reused-id).
#[test]
fn an_outcome_for_a_connection_that_is_not_connecting_forgets_it() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim, "203.0.113.10:40000");
    connect(&mut sim, &mut c, peer_v4());
    let (_, _, attempt) = sim.host.connects[0];
    let (_, got) = sim.peer_connects(relay, peer_v4());
    assert!(got.is_some(), "the peer's connection answers the Connect");
    // The same id again, for another peer with a permission: the core took it.
    c.create_permission(&mut sim, &[peer_v4_b()]).success();
    let mut out = vec![0u8; turnpike_proto::server::tcp_relay::TCP_MESSAGE_MAX];
    let now = sim.now();
    let action = sim
        .server
        .handle_peer_connection(now, relay, peer_v4_b(), attempt, &mut out);
    assert!(matches!(
        action,
        turnpike_proto::PeerAction::ToClient { .. }
    ));
    assert_eq!(sim.server.peer_connection_count(), 2);
    // The attempt's outcome arrives: not a Connect in progress, so the runtime closes it.
    assert_eq!(sim.peer_connected(attempt, true), None);
    assert_eq!(sim.server.peer_connection_count(), 1);
    let mut data = TestClient::new(tcp("203.0.113.10:40100"), ALICE.0, ALICE.1);
    data.request(
        &mut sim,
        Method::CONNECTION_BIND,
        &[A::Connection(attempt.0)],
    )
    .assert_error(400);
}
