//! TURN REST credentials (draft-uberti-behave-turn-rest): `<expiry>:<user>` or
//! `<user>:<expiry>` usernames with base64(HMAC-SHA1(secret, username)) passwords, several
//! secrets at once, static users beside them, expiry, and `strict_expiry`.

mod common;

use std::time::Duration;

use common::*;
use turnpike_proto::auth::rest::rest_password;
use turnpike_proto::{TimeBase, TurnConfig};
use turnpike_stun::{AttrType, IntegrityKind, Method};

#[track_caller]
fn assert_challenge(resp: &Resp) {
    resp.assert_error(401);
    assert_eq!(resp.realm().as_deref(), Some(REALM));
    assert!(resp.nonce().is_some_and(|n| n.starts_with("obMatJos2")));
    assert!(resp.has(AttrType::PASSWORD_ALGORITHMS));
    assert!(
        !resp.has(AttrType::MESSAGE_INTEGRITY),
        "a 401 is not signed"
    );
}

#[test]
fn expiry_first_username_works() {
    let mut sim = Sim::new();
    let mut c = TestClient::rest(
        udp("203.0.113.10:40000"),
        SECRET,
        "carol",
        START_UNIX + 3600,
    );
    assert_eq!(c.username, format!("{}:carol", START_UNIX + 3600));
    let resp = c.allocate(&mut sim, &[]).success();
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
}

#[test]
fn user_first_username_works() {
    let mut sim = Sim::new();
    let username = format!("carol:{}", START_UNIX + 3600);
    let password = rest_password(SECRET, &username);
    let mut c = TestClient::new(udp("203.0.113.10:40000"), &username, &password);
    c.allocate(&mut sim, &[]).success();
    // A user part that itself contains colons.
    let username = format!("team:carol:{}", START_UNIX + 3600);
    let password = rest_password(SECRET, &username);
    let mut d = TestClient::new(udp("203.0.113.10:40001"), &username, &password);
    d.allocate(&mut sim, &[]).success();
}

#[test]
fn classic_numeric_user_first_username_works() {
    // The classic example credential `28224511:1379330808`: user 28224511, expiring at
    // 1379330808. Run the server at a wall-clock time just before that.
    let start = epoch();
    let mut config = TurnConfig::default();
    config.turn.realm = REALM.into();
    config.turn.secrets = vec!["secret".into()];
    let mut setup = setup(start);
    setup.time_base = TimeBase {
        instant: start,
        unix_secs: 1_379_330_000,
    };
    let mut sim = Sim::from_parts(start, config, setup);
    let username = "28224511:1379330808";
    let password = rest_password(b"secret", username);
    // printf %s 28224511:1379330808 | openssl dgst -binary -sha1 -hmac secret | base64
    assert_eq!(password, "DgeEDsW0zLcL1bTrEvUCjYCtk4w=");
    let mut c = TestClient::new(udp("203.0.113.10:40000"), username, &password);
    c.allocate(&mut sim, &[]).success();
    // 808 s later the credential has expired (the allocation lives on: no strict_expiry).
    sim.advance_secs(809);
    let mut again = TestClient::new(udp("203.0.113.10:40001"), username, &password);
    assert_challenge(&again.allocate(&mut sim, &[]));
}

#[test]
fn every_configured_secret_is_accepted_during_rotation() {
    let mut sim = Sim::with(|c| c.turn.secrets = vec!["old-secret".into(), "new-secret".into()]);
    let expiry = START_UNIX + 600;
    let mut old = TestClient::rest(udp("203.0.113.10:40000"), b"old-secret", "carol", expiry);
    old.allocate(&mut sim, &[]).success();
    let mut new = TestClient::rest(udp("203.0.113.10:40001"), b"new-secret", "carol", expiry);
    new.allocate(&mut sim, &[]).success();
    let mut other = TestClient::rest(udp("203.0.113.10:40002"), b"unknown", "carol", expiry);
    assert_challenge(&other.allocate(&mut sim, &[]));
}

#[test]
fn static_users_work_beside_rest_secrets() {
    let mut sim = Sim::new();
    let mut alice = TestClient::alice("203.0.113.10:40000");
    alice.allocate(&mut sim, &[]).success();
    let mut rest = TestClient::rest(udp("203.0.113.10:40001"), SECRET, "carol", START_UNIX + 60);
    rest.allocate(&mut sim, &[]).success();
    // A name that is neither a static user nor a REST username.
    let mut nobody = TestClient::new(udp("203.0.113.10:40002"), "mallory", "x");
    assert_challenge(&nobody.allocate(&mut sim, &[]));
}

#[test]
fn expired_rest_username_is_401_with_realm_and_nonce() {
    let mut sim = Sim::new();
    let mut c = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX - 1);
    let resp = c.allocate(&mut sim, &[]);
    assert_challenge(&resp);
    assert_eq!(sim.server.allocation_count(), 0);
    // Expiring exactly now is still valid.
    let mut d = TestClient::rest(udp("203.0.113.10:40001"), SECRET, "carol", START_UNIX);
    d.allocate(&mut sim, &[]).success();
}

#[test]
fn credential_expires_with_virtual_time() {
    let mut sim = Sim::new();
    let mut c = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX + 100);
    c.allocate(&mut sim, &[]).success();
    sim.advance_secs(50);
    c.refresh(&mut sim, Some(600), &[]).success();
    sim.advance_secs(51);
    let resp = c.refresh(&mut sim, Some(600), &[]);
    assert_challenge(&resp);
}

#[test]
fn a_cached_key_does_not_let_a_wrong_password_in() {
    // The first client's Allocate puts the username's key in the server's cache; a
    // second client with the same username and a wrong password is still refused, and
    // the right password still works from another 5-tuple.
    let mut sim = Sim::new();
    let (username, password) = turnpike_proto::auth::rest::mint(SECRET, "carol", START_UNIX + 600);
    let mut good = TestClient::new(udp("203.0.113.10:40000"), &username, &password);
    good.allocate(&mut sim, &[]).success();
    let mut bad = TestClient::new(
        udp("203.0.113.10:40001"),
        &username,
        "bm90IHRoZSBwYXNzd29yZA==",
    );
    assert_challenge(&bad.allocate(&mut sim, &[]));
    let mut again = TestClient::new(udp("203.0.113.10:40002"), &username, &password);
    again.allocate(&mut sim, &[]).success();
    assert_eq!(sim.server.allocation_count(), 2);
}

#[test]
fn wrong_password_is_401_with_realm_and_nonce() {
    let mut sim = Sim::new();
    let (username, _) = turnpike_proto::auth::rest::mint(SECRET, "carol", START_UNIX + 600);
    let mut c = TestClient::new(
        udp("203.0.113.10:40000"),
        &username,
        "bm90IHRoZSBwYXNzd29yZA==",
    );
    assert_challenge(&c.allocate(&mut sim, &[]));
    let mut alice = TestClient::new(udp("203.0.113.10:40001"), ALICE.0, "wrong");
    assert_challenge(&alice.allocate(&mut sim, &[]));
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(
        sim.server.poll_timeout(),
        None,
        "failed authentication keeps no state"
    );
}

#[test]
fn strict_expiry_caps_lifetime_and_ends_the_allocation() {
    let mut sim = Sim::with(|c| c.turn.strict_expiry = true);
    let mut c = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX + 300);
    let resp = c.allocate(&mut sim, &[A::Lifetime(3600)]).success();
    assert_eq!(
        resp.lifetime(),
        Some(300),
        "capped at the credential's expiry"
    );
    let relay = sim.host.relay_of(resp.relayed()[0]);

    sim.advance_secs(200);
    let resp = c.refresh(&mut sim, Some(3600), &[]).success();
    assert_eq!(
        resp.lifetime(),
        Some(100),
        "refresh cannot outlive the credential"
    );

    sim.advance_secs(99);
    assert_eq!(sim.server.allocation_count(), 1);
    sim.advance_secs(2);
    assert_eq!(
        sim.server.allocation_count(),
        0,
        "ended with the credential"
    );
    assert_eq!(sim.host.released, vec![relay]);

    // Static users have no expiry: unaffected.
    let mut alice = TestClient::alice("203.0.113.10:40001");
    assert_eq!(
        alice
            .allocate(&mut sim, &[A::Lifetime(3600)])
            .success()
            .lifetime(),
        Some(3600)
    );
}

#[test]
fn without_strict_expiry_the_allocation_keeps_its_lifetime() {
    let mut sim = Sim::new();
    let mut c = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX + 300);
    let resp = c.allocate(&mut sim, &[A::Lifetime(3600)]).success();
    assert_eq!(resp.lifetime(), Some(3600));
    sim.advance(Duration::from_secs(1800));
    assert_eq!(sim.server.allocation_count(), 1);
}

#[test]
fn user_part_names_the_allocation_owner_exactly() {
    // Refresh must come from the same username (RFC 8656 §5): a fresh REST credential
    // of the same user is another username, so 441.
    let mut sim = Sim::new();
    let ft = udp("203.0.113.10:40000");
    let mut first = TestClient::rest(ft, SECRET, "carol", START_UNIX + 600);
    first.allocate(&mut sim, &[]).success();
    let mut renewed = TestClient::rest(ft, SECRET, "carol", START_UNIX + 1200);
    renewed
        .request(&mut sim, Method::REFRESH, &[])
        .assert_error(441);
}
