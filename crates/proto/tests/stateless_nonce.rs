//! Stateless nonces (RFC 8489 §9.2): a 401 creates no state in the server; a nonce is
//! bound to the client's transport address and expires; a stale or foreign one gets 438
//! with a fresh nonce.

mod common;

use std::time::Duration;

use common::*;
use turnpike_stun::attr::{Nonce, Realm, Username};
use turnpike_stun::nonce_cookie::{SecurityFeatures, parse_nonce_cookie};
use turnpike_stun::{AttrType, Class, MessageType, MessageWriter, Method};

#[test]
fn unauthenticated_requests_create_no_state() {
    let mut sim = Sim::new();
    let mut out = vec![0u8; 1500];
    for i in 0..10_000u32 {
        let client = std::net::SocketAddr::new(
            std::net::Ipv4Addr::from(0xCB00_7100 | (i >> 16)).into(),
            (i & 0xFFFF) as u16,
        );
        let c = TestClient::new(
            turnpike_proto::FiveTuple {
                client,
                server: server_addr(),
                transport: turnpike_proto::ClientTransport::Udp,
            },
            "x",
            "y",
        );
        let tid = turnpike_stun::TransactionId((i as u128).to_be_bytes()[4..].try_into().unwrap());
        let method = [Method::ALLOCATE, Method::REFRESH, Method::CHANNEL_BIND][i as usize % 3];
        let packet = c.build_unsigned(method, tid, &[UDP]);
        let now = sim.now();
        match sim
            .server
            .handle_client(now, c.ft, &packet, &mut out, &mut sim.host)
        {
            // A well-formed Allocate gets the challenge; the other methods unsigned over
            // UDP get nothing (the source may be spoofed).
            turnpike_proto::ClientAction::Reply(n) if method == Method::ALLOCATE => {
                let resp = Resp(out[..n].to_vec());
                resp.assert_error(401);
            }
            turnpike_proto::ClientAction::None if method != Method::ALLOCATE => {}
            other => panic!("{method:?}: {other:?}"),
        }
    }
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(
        sim.server.poll_timeout(),
        None,
        "nothing to sweep: nothing was stored"
    );
    assert!(sim.host.binds.is_empty());
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn nonce_carries_the_rfc8489_cookie() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    resp.assert_error(401);
    let nonce = resp.nonce().unwrap();
    assert!(nonce.starts_with("obMatJos2"), "{nonce}");
    let features = parse_nonce_cookie(&nonce).expect("a valid cookie");
    assert!(features.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
    assert!(
        features.contains(SecurityFeatures::USERNAME_ANONYMITY),
        "static users exist, so USERHASH is offered"
    );
    // Without static users, no username anonymity.
    let mut rest_only = Sim::with(|c| c.turn.users.clear());
    let resp = c.challenge(&mut rest_only, Method::ALLOCATE, &[UDP]);
    let features = parse_nonce_cookie(&resp.nonce().unwrap()).unwrap();
    assert!(!features.contains(SecurityFeatures::USERNAME_ANONYMITY));
    assert!(features.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
}

#[test]
fn retransmitted_challenge_sees_the_same_nonce() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let a = c.challenge(&mut sim, Method::ALLOCATE, &[UDP]).nonce();
    sim.advance_secs(3);
    let b = c.challenge(&mut sim, Method::ALLOCATE, &[UDP]).nonce();
    // Expiry is rounded to 10 s, so within one window the nonce is the same (unless the
    // window just turned: allow one change).
    sim.advance_secs(1);
    let d = c.challenge(&mut sim, Method::ALLOCATE, &[UDP]).nonce();
    assert!(a == b || b == d, "{a:?} {b:?} {d:?}");
}

#[test]
fn nonce_from_another_client_address_is_438() {
    let mut sim = Sim::new();
    let mut a = TestClient::alice("203.0.113.10:40000");
    a.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    let stolen = a.nonce.clone().unwrap();

    // Bound to the IP, not the port: another port of the same IP (a NAT's new mapping, a
    // redirected client) may use it.
    let mut same_ip = TestClient::alice("203.0.113.10:40001");
    same_ip.realm = Some(REALM.into());
    same_ip.nonce = Some(stolen.clone());
    same_ip
        .signed_once(&mut sim, Method::ALLOCATE, &[UDP])
        .success();
    for client in ["203.0.113.11:40000", "[2001:db8::10]:40000"] {
        let mut thief = TestClient::alice(client);
        thief.realm = Some(REALM.into());
        thief.nonce = Some(stolen.clone());
        let resp = thief.signed_once(&mut sim, Method::ALLOCATE, &[UDP]);
        resp.assert_error(438);
        assert!(!resp.has(AttrType::MESSAGE_INTEGRITY), "438 is not signed");
        let fresh = resp.nonce().unwrap();
        assert_ne!(fresh, stolen);
        assert_eq!(resp.realm().as_deref(), Some(REALM));
        // The fresh nonce works from there.
        thief.learn(&resp);
        thief
            .signed_once(&mut sim, Method::ALLOCATE, &[UDP])
            .success();
    }
    // The owner's nonce still works for the owner.
    a.signed_once(&mut sim, Method::ALLOCATE, &[UDP]).success();
}

/// Servers sharing a REST secret (a fleet behind DNS) accept each other's nonces, whatever
/// their processes' own random keys: a client a draining server redirects (300) goes on
/// at the sibling with the nonce it has. Chromium gives up on a 438 after a redirect.
#[test]
fn a_fleet_sharing_a_secret_accepts_each_others_nonces() {
    let mut a = Sim::with_setup(|_, s| s.nonce_secret = vec![1; 32]);
    let mut b = Sim::with_setup(|_, s| s.nonce_secret = vec![2; 32]);
    let mut client = TestClient::alice("203.0.113.10:40000");
    client.challenge(&mut a, Method::ALLOCATE, &[UDP]);
    // Redirected: same credentials, same nonce, a new port through its NAT.
    let mut moved = TestClient::alice("203.0.113.10:41234");
    moved.realm = Some(REALM.into());
    moved.nonce = client.nonce.clone();
    moved
        .signed_once(&mut b, Method::ALLOCATE, &[UDP])
        .success();
    // Without a secret (static users only) each process keys its own nonces.
    let no_secret = |seed: u8| {
        Sim::with_setup(move |c, s| {
            c.turn.secrets.clear();
            s.nonce_secret = vec![seed; 32];
        })
    };
    let (mut c, mut d) = (no_secret(1), no_secret(2));
    let mut client = TestClient::alice("203.0.113.10:40000");
    client.challenge(&mut c, Method::ALLOCATE, &[UDP]);
    client
        .signed_once(&mut d, Method::ALLOCATE, &[UDP])
        .assert_error(438);
}

#[test]
fn expired_nonce_is_438_with_a_fresh_one_that_works() {
    let mut sim = Sim::with(|c| c.turn.nonce_lifetime = Duration::from_secs(120));
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    let old = c.nonce.clone().unwrap();
    sim.advance_secs(100);
    c.signed_once(&mut sim, Method::ALLOCATE, &[UDP]).success();

    sim.advance_secs(21); // 121 s: past the nonce lifetime
    let resp = c.signed_once(&mut sim, Method::REFRESH, &[]);
    resp.assert_error(438);
    assert_eq!(resp.ty().method, Method::REFRESH);
    let fresh = resp.nonce().unwrap();
    assert_ne!(fresh, old);
    assert!(fresh.starts_with("obMatJos2"));
    c.learn(&resp);
    let ok = c.signed_once(&mut sim, Method::REFRESH, &[]).success();
    assert_eq!(ok.lifetime(), Some(600));
}

#[test]
fn default_nonce_lifetime_is_honoured() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    sim.advance_secs(580);
    c.signed_once(&mut sim, Method::ALLOCATE, &[UDP]).success();
    sim.advance_secs(21); // 601 s
    c.signed_once(&mut sim, Method::REFRESH, &[])
        .assert_error(438);
}

#[test]
fn tampered_or_foreign_nonces_are_438() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    let good = c.nonce.clone().unwrap();

    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let candidates = [
        String::from_utf8(flipped).unwrap(),
        "obMatJos2AAAB".to_owned(),
        "not a nonce at all".to_owned(),
        good[..good.len() - 2].to_owned(),
    ];
    for bad in candidates {
        c.nonce = Some(bad.clone());
        c.signed_once(&mut sim, Method::ALLOCATE, &[UDP])
            .assert_error(438);
    }
    // A nonce from a server with another key: another REST secret (the nonce key of a
    // fleet is derived from its first secret, whatever the process's own random key).
    let mut other = Sim::with(|c| c.turn.secrets = vec!["another fleet".into()]);
    let mut d = TestClient::alice("203.0.113.10:40000");
    d.challenge(&mut other, Method::ALLOCATE, &[UDP]);
    c.nonce = d.nonce.clone();
    c.signed_once(&mut sim, Method::ALLOCATE, &[UDP])
        .assert_error(438);
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn integrity_without_username_realm_or_nonce_is_400() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    let nonce = c.nonce.clone().unwrap();
    let key = c.key().integrity_key();
    let ty = MessageType::new(Method::ALLOCATE, Class::Request);
    for missing in ["username", "realm", "nonce"] {
        let mut buf = vec![0u8; 512];
        let tid = c.next_tid();
        let mut w = MessageWriter::new(&mut buf, ty, tid).unwrap();
        w.put_raw(AttrType::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .unwrap();
        if missing != "username" {
            w.put(&Username(ALICE.0)).unwrap();
        }
        if missing != "realm" {
            w.put(&Realm(REALM)).unwrap();
        }
        if missing != "nonce" {
            w.put(&Nonce(&nonce)).unwrap();
        }
        w.put_integrity(&key).unwrap();
        let n = w.finish();
        let resp = c.send_raw(&mut sim, &buf[..n]).reply();
        resp.assert_error(400);
        assert!(
            !resp.has(AttrType::NONCE),
            "a bare 400 here ({missing} missing)"
        );
    }
}

#[test]
fn a_wrong_integrity_is_401_not_438() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    let tid = c.next_tid();
    let mut packet = c.build_signed(Method::ALLOCATE, tid, &[UDP]);
    let at = packet.len() - 5;
    packet[at] ^= 0xFF; // inside the HMAC
    let resp = c.send_raw(&mut sim, &packet).reply();
    resp.assert_error(401);
    assert!(resp.nonce().is_some());
}
