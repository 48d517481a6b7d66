//! RFC 6062 §5.1: REQUESTED-TRANSPORT TCP is served only with TCP relaying on (config
//! and host), from a TCP or TLS client, without DONT-FRAGMENT, EVEN-PORT or
//! RESERVATION-TOKEN; the relay is a TCP listener and relays no datagrams.

mod common;

use common::*;
use turnpike_stun::{AttrType, Method};

fn tcp_on() -> Sim {
    Sim::with(|c| c.turn.tcp_relay = true)
}

fn tcp_alice(client: &str) -> TestClient {
    TestClient::new(tcp(client), ALICE.0, ALICE.1)
}

#[test]
fn tcp_relaying_off_is_442() {
    let mut sim = Sim::with(|c| c.turn.tcp_relay = false);
    let mut c = tcp_alice("203.0.113.10:40000");
    c.allocate_tcp(&mut sim, &[]).assert_error(442);
    // On in the config but not in the host: 442 too.
    let mut sim = tcp_on();
    sim.host.tcp = false;
    c.nonce = None;
    c.allocate_tcp(&mut sim, &[]).assert_error(442);
    assert!(sim.host.binds.is_empty());
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn tcp_relaying_is_on_by_default() {
    let mut sim = Sim::new();
    let mut c = tcp_alice("203.0.113.10:40000");
    c.allocate_tcp(&mut sim, &[]).success();
}

#[test]
fn other_transports_are_442() {
    let mut sim = tcp_on();
    let mut c = tcp_alice("203.0.113.10:40000");
    for proto in [0u8, 1, 132, 255] {
        c.request(&mut sim, Method::ALLOCATE, &[A::Transport(proto)])
            .assert_error(442);
    }
}

#[test]
fn tcp_from_a_udp_client_is_400() {
    let mut sim = tcp_on();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate_tcp(&mut sim, &[]).assert_error(400);
    assert!(sim.host.binds.is_empty());
}

#[test]
fn dont_fragment_even_port_and_reservation_token_are_400() {
    let mut sim = tcp_on();
    let mut c = tcp_alice("203.0.113.10:40000");
    for extra in [
        A::DontFragment,
        A::EvenPort(false),
        A::EvenPort(true),
        A::Token([1; 8]),
    ] {
        c.allocate_tcp(&mut sim, &[extra]).assert_error(400);
    }
    assert!(sim.host.binds.is_empty());
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn a_tcp_allocation_gets_a_tcp_relay_over_tcp_and_tls() {
    let mut sim = tcp_on();
    let mut c = tcp_alice("203.0.113.10:40000");
    let resp = c.allocate_tcp(&mut sim, &[]).success();
    let relay = sim.host.relay_of(resp.relayed()[0]);
    assert_eq!(sim.host.tcp_relays, vec![relay]);
    assert!(!resp.has(AttrType::RESERVATION_TOKEN));
    assert_eq!(resp.lifetime(), Some(600));
    assert_eq!(resp.mapped(), Some(c.ft.client));

    let mut t = TestClient::new(tls("203.0.113.10:40001"), BOB.0, BOB.1);
    t.allocate_tcp(&mut sim, &[]).success();
    assert_eq!(sim.host.tcp_relays.len(), 2);
    // UDP allocations over the same transports are unaffected.
    let mut u = tcp_alice("203.0.113.10:40002");
    u.allocate(&mut sim, &[]).success();
    assert_eq!(sim.host.tcp_relays.len(), 2);
    // Deleting releases the listener like a socket.
    c.refresh(&mut sim, Some(0), &[]).success();
    assert_eq!(sim.host.released, vec![relay]);
}

#[test]
fn address_families_work_for_tcp_relays() {
    let mut sim = tcp_on();
    let mut c = tcp_alice("203.0.113.10:40000");
    let resp = c
        .allocate_tcp(&mut sim, &[A::RequestedFamily(0x02)])
        .success();
    assert!(resp.relayed()[0].is_ipv6());
    let mut d = tcp_alice("203.0.113.10:40001");
    let resp = d
        .allocate_tcp(&mut sim, &[A::AdditionalFamily(0x02)])
        .success();
    assert_eq!(resp.relayed().len(), 2);
    assert_eq!(sim.host.tcp_relays.len(), 3);
    let mut e = tcp_alice("203.0.113.10:40002");
    e.allocate_tcp(&mut sim, &[A::RequestedFamily(0x07)])
        .assert_error(440);
}

#[test]
fn a_tcp_allocation_relays_no_datagrams() {
    let mut sim = tcp_on();
    let mut c = tcp_alice("203.0.113.10:40000");
    let resp = c.allocate_tcp(&mut sim, &[]).success();
    let relay = sim.host.relay_of(resp.relayed()[0]);
    // Permissions are for incoming connections (§5.3): allowed.
    c.create_permission(&mut sim, &[peer_v4()]).success();
    // Channels carry datagrams: 400.
    c.channel_bind(&mut sim, 0x4000, peer_v4())
        .assert_error(400);
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);
    assert_eq!(sim.icmp(relay, peer_v4(), 3, 3, 0), None);
    assert_eq!(sim.server.stats().to_peer, 0);
}

#[test]
fn connect_on_a_udp_allocation_is_400() {
    let mut sim = tcp_on();
    let mut c = tcp_alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.request(&mut sim, Method::CONNECT, &[A::Peer(peer_v4())])
        .assert_error(400);
    assert!(sim.host.connects.is_empty());
}
