//! RFC 8489 long-term credentials (§9.2): PASSWORD-ALGORITHMS offered in the 401, SHA-256
//! keys with MESSAGE-INTEGRITY-SHA256, the bid-down checks, USERHASH; and classic RFC 5389
//! clients (MD5, MESSAGE-INTEGRITY only) unchanged.

mod common;

use common::*;
use turnpike_stun::attr::PasswordAlgorithmId;
use turnpike_stun::{AttrType, IntegrityKind, LongTermKey, Method};

/// PASSWORD-ALGORITHMS as offered: SHA-256 then MD5, no parameters.
const OFFERED: [u8; 8] = [0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];

fn sha256_alice(client: &str) -> TestClient {
    let mut c = TestClient::alice(client);
    c.algorithm = PasswordAlgorithmId::SHA256;
    c
}

#[test]
fn challenge_offers_sha256_then_md5() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    resp.assert_error(401);
    assert_eq!(
        resp.raw(AttrType::PASSWORD_ALGORITHMS).as_deref(),
        Some(&OFFERED[..])
    );
    assert_eq!(resp.realm().as_deref(), Some(REALM));
}

#[test]
fn sha256_negotiation_with_message_integrity_sha256() {
    let mut sim = Sim::new();
    let mut c = sha256_alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[]).success();
    assert!(resp.has(AttrType::MESSAGE_INTEGRITY_SHA256));
    assert!(!resp.has(AttrType::MESSAGE_INTEGRITY));
    let key = LongTermKey::derive(PasswordAlgorithmId::SHA256, ALICE.0, REALM, ALICE.1).unwrap();
    assert_eq!(resp.verify(&key), Some(IntegrityKind::Sha256 { len: 32 }));
    let md5 = LongTermKey::derive(PasswordAlgorithmId::MD5, ALICE.0, REALM, ALICE.1).unwrap();
    assert_eq!(resp.verify(&md5), None, "signed with the SHA-256 key");
    // Follow-up requests and their errors too.
    let refresh = c.refresh(&mut sim, Some(600), &[]).success();
    assert_eq!(
        refresh.verify(&key),
        Some(IntegrityKind::Sha256 { len: 32 })
    );
    let err = c.create_permission(&mut sim, &[sa("10.0.0.1:1")]);
    err.assert_error(403);
    assert_eq!(err.verify(&key), Some(IntegrityKind::Sha256 { len: 32 }));
}

#[test]
fn sha256_works_for_rest_credentials_too() {
    let mut sim = Sim::new();
    let mut c = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX + 600);
    c.algorithm = PasswordAlgorithmId::SHA256;
    let resp = c.allocate(&mut sim, &[]).success();
    assert_eq!(
        resp.verify(&c.key()),
        Some(IntegrityKind::Sha256 { len: 32 })
    );
}

#[test]
fn only_one_of_the_algorithm_attributes_is_400() {
    let mut sim = Sim::new();
    for attrs in [AlgAttrs::ListOnly, AlgAttrs::ChosenOnly] {
        for alg in [PasswordAlgorithmId::SHA256, PasswordAlgorithmId::MD5] {
            let mut c = TestClient::alice("203.0.113.10:40000");
            c.algorithm = alg;
            c.alg_attrs = attrs.clone();
            let resp = c.allocate(&mut sim, &[]);
            resp.assert_error(400);
            assert!(!resp.has(AttrType::NONCE), "{attrs:?} {alg:?}: a plain 400");
        }
    }
    assert_eq!(sim.server.allocation_count(), 0);
}

#[test]
fn altered_algorithm_list_is_a_bid_down_and_400() {
    let mut sim = Sim::new();
    for list in [vec![1], vec![1, 2], vec![2], vec![2, 1, 1], vec![]] {
        let mut c = sha256_alice("203.0.113.10:40000");
        c.alg_attrs = AlgAttrs::AlteredList(list.clone());
        c.allocate(&mut sim, &[]).assert_error(400);
        let mut md5 = TestClient::alice("203.0.113.10:40001");
        md5.alg_attrs = AlgAttrs::AlteredList(list.clone());
        md5.allocate(&mut sim, &[]).assert_error(400);
    }
    // The list exactly as offered is fine with either choice.
    let mut both = TestClient::alice("203.0.113.10:40002");
    both.alg_attrs = AlgAttrs::Both;
    both.allocate(&mut sim, &[]).success();
}

#[test]
fn an_algorithm_that_was_not_offered_is_400() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP]);
    // PASSWORD-ALGORITHM 0x0003 with the right list: hand-built.
    let mut attrs = vec![UDP];
    attrs.push(A::Raw(AttrType::PASSWORD_ALGORITHMS.0, OFFERED.to_vec()));
    attrs.push(A::Raw(AttrType::PASSWORD_ALGORITHM.0, vec![0, 3, 0, 0]));
    c.signed_once(&mut sim, Method::ALLOCATE, &attrs)
        .assert_error(400);
    // Parameters on MD5 are not what was offered either.
    let mut attrs = vec![UDP];
    attrs.push(A::Raw(AttrType::PASSWORD_ALGORITHMS.0, OFFERED.to_vec()));
    attrs.push(A::Raw(
        AttrType::PASSWORD_ALGORITHM.0,
        vec![0, 1, 0, 1, 9, 0, 0, 0],
    ));
    c.signed_once(&mut sim, Method::ALLOCATE, &attrs)
        .assert_error(400);
}

#[test]
fn userhash_works_for_static_users() {
    let mut sim = Sim::new();
    for alg in [PasswordAlgorithmId::MD5, PasswordAlgorithmId::SHA256] {
        let mut c = TestClient::alice(if alg == PasswordAlgorithmId::MD5 {
            "203.0.113.10:40000"
        } else {
            "203.0.113.10:40001"
        });
        c.algorithm = alg;
        c.userhash = true;
        let resp = c.allocate(&mut sim, &[]).success();
        assert!(resp.verify(&c.key()).is_some());
        // The allocation belongs to alice: a refresh by name works too.
        c.userhash = false;
        c.refresh(&mut sim, Some(600), &[]).success();
    }
    // A USERHASH that names nobody.
    let mut nobody = TestClient::new(udp("203.0.113.10:40002"), "nobody", "x");
    nobody.userhash = true;
    nobody.allocate(&mut sim, &[]).assert_error(401);
}

#[test]
fn classic_rfc5389_client_is_unchanged() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.fingerprint = true;
    let resp = c.allocate(&mut sim, &[]).success();
    assert!(resp.has(AttrType::MESSAGE_INTEGRITY));
    assert!(!resp.has(AttrType::MESSAGE_INTEGRITY_SHA256));
    assert!(!resp.has(AttrType::PASSWORD_ALGORITHMS));
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    assert_eq!(resp.msg().verify_fingerprint(), Ok(true));
    // The request it sent had no RFC 8489 attribute at all.
    let tid = c.next_tid();
    let packet = c.build_signed(Method::REFRESH, tid, &[]);
    let msg = turnpike_stun::Message::new_checked(&packet[..]).unwrap();
    let types: Vec<AttrType> = msg.attributes().map(|a| a.ty).collect();
    assert_eq!(
        types,
        vec![
            AttrType::USERNAME,
            AttrType::REALM,
            AttrType::NONCE,
            AttrType::MESSAGE_INTEGRITY,
            AttrType::FINGERPRINT
        ]
    );
    let r = c.send_raw(&mut sim, &packet).reply().success();
    assert_eq!(r.verify(&c.key()), Some(IntegrityKind::Sha1));
}

#[test]
fn md5_key_with_message_integrity_sha256_is_answered_in_kind() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.sha256_integrity = Some(true);
    let resp = c.allocate(&mut sim, &[]).success();
    assert_eq!(
        resp.verify(&c.key()),
        Some(IntegrityKind::Sha256 { len: 32 })
    );
}
