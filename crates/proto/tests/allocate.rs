//! Allocate (RFC 8656 §7.2): what a successful allocation answers, and each reason to
//! refuse one.

mod common;

use std::time::Duration;

use common::*;
use turnpike_stun::attr::PasswordAlgorithmId;
use turnpike_stun::{AttrType, Class, IntegrityKind, LongTermKey, Method};

#[test]
fn success_carries_relayed_mapped_lifetime_and_integrity() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[]).success();

    assert_eq!(resp.ty().method, Method::ALLOCATE);
    let relayed = resp.relayed();
    assert_eq!(
        relayed,
        vec![sa("192.0.2.1:49152")],
        "first port of the range, IPv4"
    );
    assert_eq!(
        resp.lifetime(),
        Some(600),
        "default lifetime (RFC 8656 §3.2)"
    );
    assert_eq!(resp.mapped(), Some(sa("203.0.113.10:40000")));
    let key = LongTermKey::derive(PasswordAlgorithmId::MD5, ALICE.0, REALM, ALICE.1).unwrap();
    assert_eq!(resp.verify(&key), Some(IntegrityKind::Sha1));
    let wrong = LongTermKey::derive(PasswordAlgorithmId::MD5, ALICE.0, REALM, "nope").unwrap();
    assert_eq!(resp.verify(&wrong), None);
    assert!(
        !resp.has(AttrType::SOFTWARE),
        "no SOFTWARE unless configured"
    );

    assert_eq!(sim.server.allocation_count(), 1);
    assert_eq!(sim.host.live.len(), 1);
    assert_eq!(sim.host.ledger.total(), 1);
    assert_eq!(sim.server.stats().allocations_created, 1);
}

#[test]
fn requested_lifetime_is_capped_by_max_and_floored_at_default() {
    let mut sim = Sim::with(|c| c.turn.max_lifetime = Duration::from_secs(1200));
    let mut a = TestClient::alice("203.0.113.10:40000");
    assert_eq!(
        a.allocate(&mut sim, &[A::Lifetime(86_400)])
            .success()
            .lifetime(),
        Some(1200)
    );
    let mut b = TestClient::alice("203.0.113.10:40001");
    assert_eq!(
        b.allocate(&mut sim, &[A::Lifetime(900)])
            .success()
            .lifetime(),
        Some(900)
    );
    let mut c = TestClient::alice("203.0.113.10:40002");
    assert_eq!(
        c.allocate(&mut sim, &[A::Lifetime(30)])
            .success()
            .lifetime(),
        Some(600),
        "below the default, the default is granted"
    );
}

#[test]
fn max_lifetime_below_default_caps_the_default() {
    let mut sim = Sim::with(|c| c.turn.max_lifetime = Duration::from_secs(120));
    let mut a = TestClient::alice("203.0.113.10:40000");
    assert_eq!(a.allocate(&mut sim, &[]).success().lifetime(), Some(120));
}

#[test]
fn missing_requested_transport_is_400() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    // Unsigned over UDP it gets nothing (the source may be spoofed: only a well-formed
    // Allocate is challenged); signed, it gets its 400.
    let tid = c.next_tid();
    let unsigned = c.build_unsigned(Method::ALLOCATE, tid, &[]);
    assert!(matches!(c.send_raw(&mut sim, &unsigned), Outcome::None));
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP])
        .assert_error(401);
    let resp = c.request(&mut sim, Method::ALLOCATE, &[]);
    resp.assert_error(400);
    assert_eq!(resp.ty().method, Method::ALLOCATE);
    assert_eq!(
        resp.verify(&c.key()),
        Some(IntegrityKind::Sha1),
        "errors are signed too"
    );
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn malformed_requested_transport_is_400() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP])
        .assert_error(401);
    let resp = c.request(
        &mut sim,
        Method::ALLOCATE,
        &[A::Raw(AttrType::REQUESTED_TRANSPORT.0, vec![17])],
    );
    resp.assert_error(400);
}

/// With RFC 6062 relays off (they are on by default), TCP is as unknown as any other
/// protocol number.
#[test]
fn tcp_transport_is_442_while_tcp_relays_are_off() {
    let mut sim = Sim::with(|c| c.turn.tcp_relay = false);
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.request(&mut sim, Method::ALLOCATE, &[A::Transport(6)])
        .assert_error(442);
    c.request(&mut sim, Method::ALLOCATE, &[A::Transport(1)])
        .assert_error(442);
    assert_eq!(sim.server.allocation_count(), 0);
    assert!(
        sim.host.binds.is_empty(),
        "nothing bound for a refused transport"
    );
}

#[test]
fn second_allocate_on_the_same_five_tuple_is_437() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    let again = c.allocate(&mut sim, &[]);
    again.assert_error(437);
    assert_eq!(sim.server.allocation_count(), 1);
    assert_eq!(sim.host.live.len(), 1, "no second relay bound");
    // Even another user on that 5-tuple gets 437 for Allocate.
    let mut b = TestClient::bob("203.0.113.10:40000");
    b.allocate(&mut sim, &[]).assert_error(437);
    // Another port is another 5-tuple.
    let mut other = TestClient::alice("203.0.113.10:40001");
    other.allocate(&mut sim, &[]).success();
    // So is another transport from the same address.
    let mut over_tcp = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    over_tcp.allocate(&mut sim, &[]).success();
    assert_eq!(sim.server.allocation_count(), 3);
}

#[test]
fn ipv6_without_host_support_is_440() {
    let mut sim = Sim::new();
    sim.host.v6 = false;
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::RequestedFamily(0x02)])
        .assert_error(440);
    assert_eq!(sim.host.ledger.total(), 0, "quota slot not taken");
    // IPv4 explicitly still works.
    let resp = c.allocate(&mut sim, &[A::RequestedFamily(0x01)]).success();
    assert!(resp.relayed()[0].is_ipv4());
}

#[test]
fn ipv4_without_host_support_is_440() {
    let mut sim = Sim::new();
    sim.host.v4 = false;
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).assert_error(440);
    let resp = c.allocate(&mut sim, &[A::RequestedFamily(0x02)]).success();
    assert_eq!(resp.relayed(), vec![sa("[2001:db8::1]:49152")]);
}

#[test]
fn unknown_address_family_is_440() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::RequestedFamily(0x03)])
        .assert_error(440);
    c.allocate(&mut sim, &[A::RequestedFamily(0x00)])
        .assert_error(440);
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn unknown_comprehension_required_attribute_is_420_after_auth() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let extra = [A::Raw(0x7F31, vec![1, 2, 3, 4]), A::Raw(0x0041, vec![])];
    // Unauthenticated: the challenge comes first.
    let challenge = c.challenge(&mut sim, Method::ALLOCATE, &[UDP, extra[0].clone()]);
    challenge.assert_error(401);
    assert!(challenge.unknown_attributes().is_empty());
    // Authenticated: 420 naming both, signed.
    let resp = c.allocate(&mut sim, &extra);
    resp.assert_error(420);
    assert_eq!(resp.unknown_attributes(), vec![0x7F31, 0x0041]);
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    assert_eq!(sim.server.allocation_count(), 0);
    // Comprehension-optional unknown attributes are ignored.
    let ok = c.allocate(&mut sim, &[A::Raw(0xC0DE, vec![9; 5])]);
    assert!(ok.is_success(), "{ok:?}");
}

#[test]
fn dont_fragment_is_accepted_and_sets_df_towards_peers() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::DontFragment]).success();
    c.create_permission(&mut sim, &[peer_v4()]).success();
    let (_, peer, payload, df) = c
        .send_indication(&mut sim, peer_v4(), b"hi", &[])
        .datagram();
    assert_eq!(
        (peer, payload.as_slice(), df),
        (peer_v4(), &b"hi"[..], true)
    );
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let (_, _, _, df) = c.channel_data(&mut sim, 0x4000, b"cd").datagram();
    assert!(df);

    // Without it, DF follows the Send indication's own DONT-FRAGMENT.
    let mut d = TestClient::alice("203.0.113.10:40001");
    d.allocate(&mut sim, &[]).success();
    d.create_permission(&mut sim, &[peer_v4()]).success();
    let (_, _, _, df) = d.send_indication(&mut sim, peer_v4(), b"x", &[]).datagram();
    assert!(!df);
    let (_, _, _, df) = d
        .send_indication(&mut sim, peer_v4(), b"x", &[A::DontFragment])
        .datagram();
    assert!(df);
}

#[test]
fn fingerprint_in_the_request_is_echoed_and_a_bad_one_is_dropped() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.fingerprint = true;
    let resp = c.allocate(&mut sim, &[]).success();
    assert!(resp.has(AttrType::FINGERPRINT));
    assert_eq!(resp.msg().verify_fingerprint(), Ok(true));

    let tid = c.next_tid();
    let mut packet = c.build_signed(Method::REFRESH, tid, &[]);
    let last = packet.len() - 1;
    packet[last] ^= 1;
    assert_eq!(c.send_raw(&mut sim, &packet), Outcome::None);
}

#[test]
fn software_is_added_when_configured() {
    let mut sim = Sim::with(|c| c.stun.software = Some("turnpike-test".into()));
    let mut c = TestClient::alice("203.0.113.10:40000");
    let challenge = c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    assert!(challenge.has(AttrType::SOFTWARE));
    let resp = c.allocate(&mut sim, &[]).success();
    assert_eq!(
        resp.raw(AttrType::SOFTWARE).as_deref(),
        Some(&b"turnpike-test"[..])
    );
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
}

#[test]
fn responses_and_indications_from_clients_are_ignored() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[]).success();
    // Bounce the server's own success response back at it.
    assert_eq!(c.send_raw(&mut sim, &resp.0), Outcome::None);
    assert_eq!(resp.ty().class, Class::Success);
    // An unknown method, authenticated, is 400.
    let other = c.request(&mut sim, Method::new(0x0FF).unwrap(), &[]);
    other.assert_error(400);
}

#[test]
fn turn_server_answers_binding_requests_too() {
    let mut sim = Sim::new();
    let c = TestClient::alice("203.0.113.10:40000");
    let tid = turnpike_stun::TransactionId([3; 12]);
    let packet = c.build_unsigned(Method::BINDING, tid, &[]);
    let resp = c.send_raw(&mut sim, &packet).reply();
    assert_eq!(resp.ty(), turnpike_stun::MessageType::BINDING_SUCCESS);
    assert_eq!(resp.tid(), tid);
    assert_eq!(resp.mapped(), Some(sa("203.0.113.10:40000")));
    assert_eq!(sim.server.poll_timeout(), None, "Binding keeps no state");
}
