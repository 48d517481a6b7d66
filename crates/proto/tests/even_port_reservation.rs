//! EVEN-PORT and RESERVATION-TOKEN (RFC 8656 §7.2, §18.7, §18.10): an even relay port,
//! optionally with the next port reserved for about 30 seconds under a token that a
//! second Allocate (from any 5-tuple) can redeem.

mod common;

use common::*;
use turnpike_proto::PortRequest;

#[test]
fn even_port_without_r_gives_an_even_port_and_no_token() {
    let mut sim = Sim::new();
    // Make the next free port odd first.
    let mut first = TestClient::alice("203.0.113.10:40000");
    assert_eq!(
        first.allocate(&mut sim, &[]).success().relayed()[0].port(),
        49152
    );

    let mut c = TestClient::alice("203.0.113.10:40001");
    let resp = c.allocate(&mut sim, &[A::EvenPort(false)]).success();
    assert_eq!(resp.relayed()[0].port(), 49154, "49153 is odd, so skipped");
    assert_eq!(resp.token(), None);
    assert_eq!(
        sim.host.binds.last(),
        Some(&(
            turnpike_proto::Family::V4,
            PortRequest::Even {
                reserve_next: false
            }
        ))
    );
    assert_eq!(sim.host.live.len(), 2);
}

#[test]
fn even_port_with_r_reserves_the_next_port_for_a_token() {
    let mut sim = Sim::new();
    let mut rtp = TestClient::alice("203.0.113.10:40000");
    let resp = rtp.allocate(&mut sim, &[A::EvenPort(true)]).success();
    let port = resp.relayed()[0].port();
    assert_eq!(port % 2, 0);
    let token = resp.token().expect("RESERVATION-TOKEN");
    assert_eq!(sim.host.live.len(), 2, "the next port is bound and held");

    // A second Allocate from another 5-tuple (RTCP) redeems it within 30 s.
    sim.advance_secs(20);
    let mut rtcp = TestClient::bob("203.0.113.10:40001");
    let r2 = rtcp.allocate(&mut sim, &[A::Token(token)]).success();
    assert_eq!(r2.relayed(), vec![sa(&format!("192.0.2.1:{}", port + 1))]);
    assert_eq!(r2.token(), None);
    assert_eq!(
        sim.host.live.len(),
        2,
        "no new socket: the reserved one is used"
    );
    assert_eq!(sim.server.allocation_count(), 2);

    // The reserved relay now carries traffic for the second allocation.
    rtcp.create_permission(&mut sim, &[peer_v4()]).success();
    let relay = sim.host.relay_of(r2.relayed()[0]);
    let got = sim.peer_send(relay, peer_v4(), b"rtcp").expect("relayed");
    assert_eq!(got.to, rtcp.ft);

    // A token is good once.
    let mut third = TestClient::alice("203.0.113.10:40002");
    third
        .allocate(&mut sim, &[A::Token(token)])
        .assert_error(508);

    // Past 30 s nothing is released: the token was redeemed.
    sim.advance_secs(60);
    assert!(sim.host.released.is_empty());
}

#[test]
fn unknown_token_is_508() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Token(*b"notatokn")])
        .assert_error(508);
    assert_eq!(sim.host.ledger.total(), 0, "the quota slot is given back");
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn expired_reservation_is_released_and_its_token_is_508() {
    let mut sim = Sim::new();
    let mut rtp = TestClient::alice("203.0.113.10:40000");
    let resp = rtp.allocate(&mut sim, &[A::EvenPort(true)]).success();
    let token = resp.token().unwrap();
    let reserved = sim
        .host
        .relay_of(sa(&format!("192.0.2.1:{}", resp.relayed()[0].port() + 1)));

    sim.advance_secs(29);
    assert!(sim.host.released.is_empty(), "still reserved at 29 s");
    sim.advance_secs(2);
    assert_eq!(sim.host.released, vec![reserved], "released after 30 s");
    assert_eq!(sim.host.live.len(), 1);

    let mut late = TestClient::bob("203.0.113.10:40001");
    late.allocate(&mut sim, &[A::Token(token)])
        .assert_error(508);
    assert_eq!(sim.host.bad_releases, 0);
}

#[test]
fn token_with_even_port_or_a_family_is_400() {
    let mut sim = Sim::new();
    let mut rtp = TestClient::alice("203.0.113.10:40000");
    let token = rtp
        .allocate(&mut sim, &[A::EvenPort(true)])
        .success()
        .token()
        .unwrap();
    let mut c = TestClient::bob("203.0.113.10:40001");
    c.allocate(&mut sim, &[A::Token(token), A::EvenPort(false)])
        .assert_error(400);
    c.allocate(&mut sim, &[A::Token(token), A::RequestedFamily(1)])
        .assert_error(400);
    c.allocate(&mut sim, &[A::Token(token), A::AdditionalFamily(2)])
        .assert_error(400);
    // The refused requests did not consume the token.
    c.allocate(&mut sim, &[A::Token(token)]).success();
}

#[test]
fn malformed_even_port_is_400() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Raw(0x0018, vec![0x80, 0])])
        .assert_error(400);
    c.allocate(&mut sim, &[A::Raw(0x0022, vec![1, 2, 3])])
        .assert_error(400);
}

#[test]
fn reservation_needs_two_free_ports() {
    let mut sim = Sim::new();
    sim.host.port_limit = 1;
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::EvenPort(true)]).assert_error(508);
    assert_eq!(sim.host.ledger.total(), 0);
    c.allocate(&mut sim, &[A::EvenPort(false)]).success();
}

#[test]
fn reservation_outlives_the_allocation_that_made_it() {
    let mut sim = Sim::new();
    let mut rtp = TestClient::alice("203.0.113.10:40000");
    let token = rtp
        .allocate(&mut sim, &[A::EvenPort(true)])
        .success()
        .token()
        .unwrap();
    rtp.refresh(&mut sim, Some(0), &[]).success();
    assert_eq!(sim.host.live.len(), 1, "only the reservation is left");
    let mut rtcp = TestClient::bob("203.0.113.10:40001");
    rtcp.allocate(&mut sim, &[A::Token(token)]).success();
}
