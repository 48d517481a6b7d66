//! Per-user traffic budgets (`[quotas] user_*`): packets and bytes per second and bytes
//! per period across all of a user's allocations, over UDP and TCP alike; over the rate
//! the excess is dropped and counted, once the period's bytes are spent the user's data
//! stops and its Allocates and Refreshes get 486, and other users are not touched.

mod common;

use std::time::Duration;

use common::*;
use turnpike_proto::Reject;

/// A REST user `carol` with two allocations, one over UDP and one over TCP.
fn carol_twice(sim: &mut Sim) -> (TestClient, TestClient) {
    let expiry = START_UNIX + 86_400;
    let mut u = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", expiry);
    u.allocate(sim, &[]).success();
    u.channel_bind(sim, 0x4000, peer_v4()).success();
    let mut t = TestClient::rest(tcp("203.0.113.10:40001"), SECRET, "carol", expiry);
    t.allocate(sim, &[]).success();
    t.channel_bind(sim, 0x4000, peer_v4()).success();
    (u, t)
}

fn relayed(out: &Outcome) -> bool {
    matches!(out, Outcome::ToPeer { .. })
}

#[test]
fn the_packet_rate_is_shared_by_all_of_a_users_allocations() {
    let mut sim = Sim::with(|c| c.quotas.user_packets_per_sec = 10);
    let (u, t) = carol_twice(&mut sim);
    let mut dave = TestClient::bob("203.0.113.20:40000");
    dave.allocate(&mut sim, &[]).success();
    dave.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let mut passed = 0;
    for _ in 0..10 {
        passed += usize::from(relayed(&u.channel_data(&mut sim, 0x4000, b"0123456789")));
        passed += usize::from(relayed(&t.channel_data(&mut sim, 0x4000, b"0123456789")));
    }
    assert_eq!(passed, 10, "10 a second across UDP and TCP together");
    assert_eq!(sim.server.stats().dropped_user_budget, 10);
    // Another user has its own budget, untouched.
    for _ in 0..10 {
        assert!(relayed(&dave.channel_data(&mut sim, 0x4000, b"x")));
    }
    // Peer to client counts against the same budget.
    let addr = sim_relayed(&sim, &u);
    let relay = sim.host.relay_of(addr);
    assert_eq!(sim.peer_send(relay, peer_v4(), b"in"), None);
    // The next second, it flows again.
    sim.advance(Duration::from_millis(1000));
    assert!(relayed(&u.channel_data(&mut sim, 0x4000, b"again")));
}

#[test]
fn a_spent_period_budget_stops_data_and_gets_486() {
    let mut sim = Sim::with(|c| {
        c.quotas.user_bytes_per_period = 1000;
        c.quotas.user_budget_period = Duration::from_secs(3600);
    });
    let (mut u, mut t) = carol_twice(&mut sim);
    let addr = sim_relayed(&sim, &u);
    let relay = sim.host.relay_of(addr);
    for _ in 0..4 {
        assert!(relayed(&u.channel_data(&mut sim, 0x4000, &[7; 200])));
    }
    // Peer → client is counted as well: 800 + 200 = 1000, the budget.
    assert!(sim.peer_send(relay, peer_v4(), &[1; 200]).is_some());
    assert!(!relayed(&t.channel_data(
        &mut sim,
        0x4000,
        b"one more byte"
    )));
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);
    // Spent: a new Allocate or a Refresh is over quota; deleting is still allowed.
    let mut third = TestClient::rest(
        udp("203.0.113.10:40002"),
        SECRET,
        "carol",
        START_UNIX + 86_400,
    );
    third.allocate(&mut sim, &[]).assert_error(486);
    u.refresh(&mut sim, Some(600), &[]).assert_error(486);
    assert!(sim.server.stats().refused(Reject::AllocationQuotaReached) >= 2);
    t.refresh(&mut sim, Some(0), &[]).success();
    // A new period (the old allocations expired meanwhile, unrefreshable): allocations
    // and data are possible again.
    sim.advance_secs(3600);
    third.allocate(&mut sim, &[]).success();
    third.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    assert!(relayed(&third.channel_data(&mut sim, 0x4000, &[7; 200])));
}

#[test]
fn the_byte_rate_is_policed_per_second() {
    let mut sim = Sim::with(|c| c.quotas.user_bytes_per_sec = 1000);
    let (u, _t) = carol_twice(&mut sim);
    let passed = (0..10)
        .filter(|_| relayed(&u.channel_data(&mut sim, 0x4000, &[0; 300])))
        .count();
    assert_eq!(passed, 3);
}

/// The relayed address of a client's allocation (its last Allocate success).
fn sim_relayed(sim: &Sim, c: &TestClient) -> std::net::SocketAddr {
    let sessions = sim
        .server
        .sessions(sim.now(), &turnpike_proto::server::SessionFilter::default());
    sessions
        .iter()
        .find(|s| s.five_tuple == c.ft)
        .expect("its session")
        .relayed[0]
}
