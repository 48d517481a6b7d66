//! A new configuration swapped in at run time (`TurnServer::reconfigure`) changes what
//! the next request is judged by — secrets, users, policy, quotas — and leaves every live
//! allocation, permission and channel as it was. A configuration that cannot be used is
//! refused and the old one stays.

mod common;

use std::sync::Arc;

use common::*;
use turnpike_proto::{StaticUser, TurnConfig};

fn rotated() -> TurnConfig {
    let mut c = config();
    c.turn.secrets = vec!["rotated-secret".into()];
    c.turn.users.retain(|u| u.name != ALICE.0);
    c.quotas.permissions_per_allocation = 1;
    c
}

#[test]
fn a_new_configuration_judges_new_requests_and_keeps_live_allocations() {
    let mut sim = Sim::new();
    let mut alice = TestClient::alice("203.0.113.10:40000");
    let relayed = alice.allocate(&mut sim, &[]).success().relayed()[0];
    let relay = sim.host.relay_of(relayed);
    alice.create_permission(&mut sim, &[peer_v4()]).success();
    let mut carol = TestClient::rest(
        udp("203.0.113.11:40000"),
        SECRET,
        "carol",
        START_UNIX + 3600,
    );
    carol.allocate(&mut sim, &[]).success();

    sim.server.reconfigure(Arc::new(rotated())).unwrap();

    // Live allocations and permissions are untouched: data still flows both ways.
    assert_eq!(sim.server.allocation_count(), 2);
    let got = sim.peer_send(relay, peer_v4(), b"still here").unwrap();
    assert_eq!(got.to, alice.ft);
    // New requests are judged by the new configuration: the old secret and the removed
    // user no longer authenticate, the new secret does, and the new quota applies.
    let mut late = TestClient::rest(udp("203.0.113.12:40000"), SECRET, "dave", START_UNIX + 3600);
    late.allocate(&mut sim, &[]).assert_error(401);
    alice.refresh(&mut sim, Some(600), &[]).assert_error(401);
    let mut fresh = TestClient::rest(
        udp("203.0.113.13:40000"),
        b"rotated-secret",
        "erin",
        START_UNIX + 3600,
    );
    fresh.allocate(&mut sim, &[]).success();
    fresh.create_permission(&mut sim, &[peer_v4()]).success();
    fresh
        .create_permission(&mut sim, &[peer_v4_b()])
        .assert_error(508);
    assert_eq!(
        sim.server.config().turn.secrets,
        vec!["rotated-secret".to_owned()]
    );
}

#[test]
fn an_unusable_configuration_is_refused_and_the_old_one_stays() {
    let mut sim = Sim::new();
    let mut bad = rotated();
    bad.turn
        .users
        .push(StaticUser::with_password("mallory", "\u{7}"));
    assert!(sim.server.reconfigure(Arc::new(bad)).is_err());
    let mut alice = TestClient::alice("203.0.113.10:40000");
    alice.allocate(&mut sim, &[]).success();
    assert_eq!(sim.server.config().turn.secrets, config().turn.secrets);
}
