//! RFC 6062 §5.3: a peer that connects to a TCP relay is accepted only with a permission
//! for its IP; the client then gets a ConnectionAttempt indication (XOR-PEER-ADDRESS,
//! CONNECTION-ID) and has 30 seconds to bind it.

mod common;

use common::*;
use turnpike_proto::RelayId;
use turnpike_stun::{Class, Method};

fn tcp_on() -> Sim {
    Sim::with(|c| c.turn.tcp_relay = true)
}

fn tcp_allocated(sim: &mut Sim) -> (TestClient, RelayId) {
    let mut c = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    let resp = c.allocate_tcp(sim, &[]).success();
    let relay = sim.host.relay_of(resp.relayed()[0]);
    (c, relay)
}

#[test]
fn without_a_permission_the_connection_is_closed() {
    let mut sim = tcp_on();
    let (_, relay) = tcp_allocated(&mut sim);
    let (_, got) = sim.peer_connects(relay, peer_v4());
    assert_eq!(got, None);
    assert_eq!(sim.server.peer_connection_count(), 0);
}

#[test]
fn with_a_permission_the_client_gets_a_connection_attempt() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    // Ports are not compared: any port of the permitted IP.
    let peer = sa("8.8.8.8:61000");
    let (id, got) = sim.peer_connects(relay, peer);
    let (to, ind) = got.expect("a ConnectionAttempt");
    assert_eq!(to, c.ft);
    assert_eq!(ind.ty().method, Method::CONNECTION_ATTEMPT);
    assert_eq!(ind.ty().class, Class::Indication);
    assert_eq!(ind.peer(), Some(peer));
    assert_eq!(ind.connection_id(), Some(id));
    assert_eq!(sim.server.stats().peer_connections, 1);

    // The client binds it on a new connection.
    let mut data = TestClient::new(tcp("203.0.113.10:40100"), ALICE.0, ALICE.1);
    let (_, connection) = data
        .send(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .1
        .bind_data();
    assert_eq!(connection, id);
}

#[test]
fn an_expired_permission_does_not_count() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    sim.advance_secs(301);
    assert_eq!(sim.peer_connects(relay, peer_v4()).1, None);
}

#[test]
fn an_unbound_attempt_is_closed_after_30_seconds() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    let (id, got) = sim.peer_connects(relay, peer_v4());
    assert!(got.is_some());
    sim.advance_secs(29);
    assert!(sim.host.closed_connections.is_empty());
    sim.advance_secs(2);
    assert_eq!(sim.host.closed_connections, vec![id]);
    let mut data = TestClient::new(tcp("203.0.113.10:40100"), ALICE.0, ALICE.1);
    data.request(&mut sim, Method::CONNECTION_BIND, &[A::Connection(id.0)])
        .assert_error(400);
}

#[test]
fn only_a_live_tcp_allocations_relay_takes_connections() {
    let mut sim = tcp_on();
    // Unknown relay.
    assert_eq!(sim.peer_connects(RelayId(77), peer_v4()).1, None);
    // The relay of a UDP allocation.
    let (mut u, udp_relay) = allocated_alice(&mut sim, "203.0.113.10:40001");
    u.create_permission(&mut sim, &[peer_v4()]).success();
    assert_eq!(sim.peer_connects(udp_relay, peer_v4()).1, None);
    // A peer of the other family than the relay.
    let (mut c, relay) = tcp_allocated(&mut sim);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert_eq!(sim.peer_connects(relay, peer_v6()).1, None);
    // A dead (expired, not swept) allocation.
    sim.elapsed += std::time::Duration::from_secs(601);
    assert_eq!(sim.peer_connects(relay, peer_v4()).1, None);
}

#[test]
fn a_reused_connection_id_is_refused() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim);
    c.create_permission(&mut sim, &[peer_v4(), peer_v4_b()])
        .success();
    let (id, got) = sim.peer_connects(relay, peer_v4());
    assert!(got.is_some());
    let mut out = vec![0u8; 512];
    let now = sim.now();
    let again = sim
        .server
        .handle_peer_connection(now, relay, peer_v4_b(), id, &mut out);
    assert_eq!(again, turnpike_proto::PeerAction::None);
    assert_eq!(sim.server.peer_connection_count(), 1);
}

#[test]
fn the_connection_limit_closes_further_attempts() {
    let mut sim = Sim::with(|c| {
        c.turn.tcp_relay = true;
        c.quotas.tcp_connections_per_allocation = 1;
    });
    let (mut c, relay) = tcp_allocated(&mut sim);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert!(sim.peer_connects(relay, sa("8.8.8.8:1")).1.is_some());
    assert_eq!(sim.peer_connects(relay, sa("8.8.8.8:2")).1, None);
}

#[test]
fn a_connect_to_a_peer_that_connected_in_is_446() {
    let mut sim = tcp_on();
    let (mut c, relay) = tcp_allocated(&mut sim);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    let (_, got) = sim.peer_connects(relay, peer_v4());
    assert!(got.is_some());
    c.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(446);
    assert!(sim.host.connects.is_empty());
}
