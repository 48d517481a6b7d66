//! Static users configured with their MD5 long-term key (`{ name, key = "0x…" }`, the
//! form coturn's `turnadmin -k` prints): MESSAGE-INTEGRITY under MD5 works, for classic
//! RFC 5389 clients (no PASSWORD-ALGORITHM) and clients that pick MD5 alike; a client that
//! picks SHA-256 gets 401 (the SHA-256 key needs the password, RFC 8489 §9.2.2), counted
//! as `md5_key_only`; a key made for another realm never verifies.

mod common;

use common::*;
use turnpike_proto::auth::AuthFailure;
use turnpike_proto::{Md5Key, StaticUser};
use turnpike_stun::attr::PasswordAlgorithmId;
use turnpike_stun::{IntegrityKind, LongTermKey};

const NAME: &str = "ninefingers";
const PASSWORD: &str = "youhavetoberealistic";

/// MD5(name ":" realm ":" password), as `turnadmin -k` computes it.
fn key_for(realm: &str) -> Md5Key {
    match LongTermKey::derive(PasswordAlgorithmId::MD5, NAME, realm, PASSWORD).unwrap() {
        LongTermKey::Md5(k) => Md5Key(k),
        LongTermKey::Sha256(_) => unreachable!("asked for MD5"),
    }
}

fn sim_with_key(realm_of_key: &str) -> Sim {
    let key = key_for(realm_of_key);
    Sim::with(move |c| c.turn.users.push(StaticUser::with_md5_key(NAME, key)))
}

#[test]
fn turnadmin_sample_key_parses() {
    // coturn's sample: turnadmin -k -u ninefingers -r north.gov -p youhavetoberealistic
    let printed: Md5Key = "0xbc807ee29df3c9ffa736523fb2c4e8ee".parse().unwrap();
    assert_eq!(printed, key_for("north.gov"));
    assert_eq!(printed.to_string(), "0xbc807ee29df3c9ffa736523fb2c4e8ee");
    for bad in [
        "bc807ee29df3c9ffa736523fb2c4e8ee",
        "0xbc80",
        "0xzz807ee29df3c9ffa736523fb2c4e8ee",
    ] {
        assert!(bad.parse::<Md5Key>().is_err(), "{bad}");
    }
}

#[test]
fn classic_client_allocates_with_the_key_user() {
    let mut sim = sim_with_key(REALM);
    let mut c = TestClient::new(udp("203.0.113.10:40000"), NAME, PASSWORD);
    let resp = c.allocate(&mut sim, &[]).success();
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    c.refresh(&mut sim, Some(600), &[]).success();
}

#[test]
fn a_client_that_picks_md5_explicitly_works() {
    let mut sim = sim_with_key(REALM);
    let mut c = TestClient::new(udp("203.0.113.10:40000"), NAME, PASSWORD);
    c.alg_attrs = AlgAttrs::Both;
    c.allocate(&mut sim, &[]).success();
}

#[test]
fn a_client_that_picks_sha256_gets_401() {
    let mut sim = sim_with_key(REALM);
    let mut c = TestClient::new(udp("203.0.113.10:40000"), NAME, PASSWORD);
    c.algorithm = PasswordAlgorithmId::SHA256;
    c.allocate(&mut sim, &[]).assert_error(401);
    assert_eq!(sim.server.stats().auth_failures(AuthFailure::Md5KeyOnly), 1);
    // Users with a password still negotiate SHA-256 beside it.
    let mut alice = TestClient::alice("203.0.113.10:40001");
    alice.algorithm = PasswordAlgorithmId::SHA256;
    alice.allocate(&mut sim, &[]).success();
}

#[test]
fn wrong_password_and_foreign_realm_keys_are_refused() {
    let mut sim = sim_with_key(REALM);
    let mut c = TestClient::new(udp("203.0.113.10:40000"), NAME, "not it");
    c.allocate(&mut sim, &[]).assert_error(401);
    let mut sim = sim_with_key("north.gov");
    let mut c = TestClient::new(udp("203.0.113.10:40000"), NAME, PASSWORD);
    c.allocate(&mut sim, &[]).assert_error(401);
    assert_eq!(
        sim.server.stats().auth_failures(AuthFailure::BadIntegrity),
        1
    );
}
