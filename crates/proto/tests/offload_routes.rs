//! The core's share of the in-kernel fast path (`turnpike_proto::server::offload`): which
//! channels it hands the host, with which deadline, when it withdraws them, and that what
//! the kernel relayed ends up in the allocation's record.

mod common;

use std::time::Duration;

use common::*;
use turnpike_proto::{Event, Usage};

fn offloading() -> Sim {
    let mut sim = Sim::new();
    sim.host.kernel = Some(FakeKernel::default());
    sim
}

fn kernel(sim: &Sim) -> &FakeKernel {
    sim.host.kernel.as_ref().expect("a kernel")
}

#[test]
fn a_channel_bind_installs_one_route_that_ends_with_the_permission() {
    let mut sim = offloading();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let relayed = c.allocate(&mut sim, &[]).success().relayed()[0];
    assert!(kernel(&sim).routes.is_empty(), "nothing before a channel");
    assert!(kernel(&sim).allocations.is_empty());
    let start = sim.now();
    c.channel_bind(&mut sim, 0x4001, peer_v4()).success();
    let r = kernel(&sim).only_route();
    assert_eq!(r.client, c.ft);
    assert_eq!(r.channel.value(), 0x4001);
    assert_eq!(r.relay, sim.host.relay_of(relayed));
    assert_eq!(r.peer, peer_v4());
    assert!(!r.dont_fragment);
    // The channel lasts 10 minutes, its permission 5 (RFC 8656 §12, §9): the kernel
    // stops at the earlier.
    assert_eq!(r.until, start + Duration::from_secs(300));
    assert_eq!(kernel(&sim).allocations[&r.allocation].0, 0, "no cap");
    // A retransmitted ChannelBind changes nothing; a refresh a minute later moves the
    // deadline (the permission is refreshed with it).
    sim.advance_secs(60);
    c.channel_bind(&mut sim, 0x4001, peer_v4()).success();
    let again = kernel(&sim).only_route();
    assert!(again.same_path(&r));
    assert_eq!(again.until, start + Duration::from_secs(360));
    assert_eq!(kernel(&sim).installs.len(), 2);
    assert!(kernel(&sim).misuse.is_empty(), "{:?}", kernel(&sim).misuse);
}

#[test]
fn a_permission_alone_installs_nothing_and_refreshing_it_extends_the_route() {
    let mut sim = offloading();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert!(
        kernel(&sim).routes.is_empty(),
        "Data indications stay in user space"
    );
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let first = kernel(&sim).only_route().until;
    sim.advance_secs(100);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert_eq!(
        kernel(&sim).only_route().until,
        first + Duration::from_secs(100)
    );
}

#[test]
fn an_expired_permission_withdraws_the_route_at_the_sweep() {
    let mut sim = offloading();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let r = kernel(&sim).only_route();
    // The kernel stops at the deadline on its own; the sweep after it tidies the map.
    sim.advance_secs(299);
    assert_eq!(kernel(&sim).routes.len(), 1);
    sim.advance_secs(2);
    assert!(kernel(&sim).routes.is_empty());
    assert_eq!(kernel(&sim).withdrawals, vec![r]);
    // A new permission brings the channel (still bound for 10 minutes) back.
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert!(kernel(&sim).only_route().same_path(&r));
    assert!(kernel(&sim).misuse.is_empty(), "{:?}", kernel(&sim).misuse);
}

#[test]
fn the_record_of_an_offloaded_allocation_includes_what_the_kernel_relayed() {
    let mut sim = offloading();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let relayed = c.allocate(&mut sim, &[]).success().relayed()[0];
    let relay = sim.host.relay_of(relayed);
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    // Two datagrams each way through user space, the rest in the kernel.
    c.channel_data(&mut sim, 0x4000, b"ten bytes!");
    c.channel_data(&mut sim, 0x4000, b"ten bytes!");
    assert!(sim.peer_send(relay, peer_v4(), b"seven!!").is_some());
    assert!(sim.peer_send(relay, peer_v4(), b"seven!!").is_some());
    let id = kernel(&sim).only_route().allocation;
    let (to_peer, to_client) = (
        Usage {
            packets: 1000,
            bytes: 120_000,
        },
        Usage {
            packets: 500,
            bytes: 600_000,
        },
    );
    sim.host.kernel_mut().relayed(id, to_peer, to_client);
    c.refresh(&mut sim, Some(0), &[]).success();
    assert!(kernel(&sim).routes.is_empty());
    assert_eq!(kernel(&sim).ended, vec![id]);
    assert!(kernel(&sim).allocations.is_empty());
    assert!(kernel(&sim).misuse.is_empty(), "{:?}", kernel(&sim).misuse);
    let Some(Event::AllocationEnded(record)) = sim.server.poll_event() else {
        panic!("a record");
    };
    assert_eq!(
        record.to_peer,
        Usage {
            packets: 1002,
            bytes: 120_020
        }
    );
    assert_eq!(
        record.to_client,
        Usage {
            packets: 502,
            bytes: 600_014
        }
    );
}

#[test]
fn an_expired_allocation_takes_its_routes_and_state_out() {
    let mut sim = offloading();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    c.channel_bind(&mut sim, 0x4001, peer_v4_b()).success();
    assert_eq!(kernel(&sim).routes.len(), 2);
    let start = sim.now();
    // Keep the permissions fresh; the allocation (10 minutes) ends first.
    for _ in 0..2 {
        sim.advance_secs(200);
        c.create_permission(&mut sim, &[peer_v4(), peer_v4_b()])
            .success();
    }
    let end = start + Duration::from_secs(600);
    assert!(kernel(&sim).routes.iter().all(|r| r.until == end));
    sim.advance_secs(201);
    assert!(kernel(&sim).routes.is_empty());
    assert!(kernel(&sim).allocations.is_empty());
    assert_eq!(kernel(&sim).ended.len(), 1);
    assert!(kernel(&sim).misuse.is_empty(), "{:?}", kernel(&sim).misuse);
}

#[test]
fn tcp_clients_and_users_with_a_budget_the_kernel_cannot_charge_stay_in_user_space() {
    let mut sim = Sim::with(|c| c.quotas.user_bytes_per_sec = 1_000_000);
    sim.host.kernel = Some(FakeKernel::default());
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    assert!(
        kernel(&sim).installs.is_empty(),
        "a budget in user space's memory only is charged per datagram there"
    );

    let mut sim = offloading();
    let mut t = TestClient::new(tcp("203.0.113.10:40000"), ALICE.0, ALICE.1);
    t.allocate(&mut sim, &[]).success();
    t.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    assert!(kernel(&sim).installs.is_empty(), "ChannelData over TCP");
}

#[test]
fn a_new_peer_policy_or_cap_reaches_the_kernel_at_once() {
    let mut sim = offloading();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let r = kernel(&sim).only_route();
    let mut config = (**sim.server.config()).clone();
    config.quotas.bandwidth_bytes_per_sec = 125_000;
    sim.server
        .reconfigure(std::sync::Arc::new(config.clone()))
        .unwrap();
    // The runtime's timer fires at the deadline, which is now.
    assert!(sim.server.poll_timeout().is_some_and(|t| t <= sim.now()));
    sim.advance(Duration::ZERO);
    assert_eq!(kernel(&sim).allocations[&r.allocation].0, 125_000);
    assert_eq!(kernel(&sim).routes.len(), 1, "the route stays");

    config.peers.deny.push("8.8.8.0/24".parse().unwrap());
    sim.server.reconfigure(std::sync::Arc::new(config)).unwrap();
    sim.advance(Duration::ZERO);
    assert!(
        kernel(&sim).routes.is_empty(),
        "a refused peer leaves the kernel"
    );
    assert_eq!(kernel(&sim).withdrawals, vec![r]);
}

#[test]
fn a_moved_client_moves_its_routes() {
    let mut sim = Sim::with(|c| c.turn.mobility = true);
    sim.host.kernel = Some(FakeKernel::default());
    let mut c = TestClient::alice("203.0.113.10:40000");
    let ticket = c
        .allocate(&mut sim, &[A::Ticket(Vec::new())])
        .success()
        .ticket()
        .expect("a ticket");
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let before = kernel(&sim).only_route();
    let mut moved = TestClient::new(udp("198.18.0.7:50000"), &c.username, &c.password);
    moved
        .refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .success();
    let after = kernel(&sim).only_route();
    assert_eq!(after.client, moved.ft);
    assert_eq!(kernel(&sim).withdrawals, vec![before]);
    assert!(kernel(&sim).misuse.is_empty(), "{:?}", kernel(&sim).misuse);
}

#[test]
fn without_a_fast_path_the_host_is_never_asked() {
    // `FakeHost::kernel_mut` panics if the core calls the fast path of a host without one.
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    sim.advance_secs(700);
    assert_eq!(sim.server.allocation_count(), 0);
}

/// A user's budget in counters the kernel shares: its channels are offloaded, the routes
/// name its slot, and the limits the kernel reads are published before the first route
/// and again after a reload's new `[quotas]`.
#[test]
fn users_with_a_budget_the_kernel_shares_are_offloaded_with_it() {
    use turnpike_proto::budget::cell;
    let mut sim = Sim::with(|c| {
        c.quotas.user_packets_per_sec = 50;
        c.quotas.user_bytes_per_period = 1_000_000;
    });
    sim.host.kernel = Some(FakeKernel {
        shares_budgets: true,
        ..FakeKernel::default()
    });
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let r = kernel(&sim).only_route();
    assert_eq!(r.budget, Some(0), "the first slot");
    // A second allocation of the same user shares the budget and its slot.
    let mut c2 = TestClient::alice("203.0.113.10:40001");
    c2.allocate(&mut sim, &[]).success();
    c2.channel_bind(&mut sim, 0x4001, peer_v4()).success();
    assert!(kernel(&sim).routes.iter().all(|r| r.budget == Some(0)));
    assert_eq!(kernel(&sim).routes.len(), 2);
    let budget = sim
        .host
        .ledger
        .budget("alice", sim.now(), Duration::from_secs(86_400));
    let limit = |i: usize| budget.cell(i);
    assert_eq!(limit(cell::PACKETS_PER_SEC), 50);
    assert_eq!(limit(cell::BYTES_PER_PERIOD), 1_000_000);
    assert_eq!(limit(cell::PERIOD_NS), 86_400 * 1_000_000_000);
    // A reload's new limits reach the kernel's counters at the sweep it makes due.
    let mut config = (**sim.server.config()).clone();
    config.quotas.user_packets_per_sec = 70;
    sim.server
        .reconfigure(std::sync::Arc::new(config))
        .expect("reconfigure");
    assert!(
        sim.server.poll_timeout().is_some_and(|t| t <= sim.now()),
        "the sweep that publishes them is due at once"
    );
    sim.advance_secs(1);
    assert_eq!(limit(cell::PACKETS_PER_SEC), 70);
    assert!(kernel(&sim).misuse.is_empty(), "{:?}", kernel(&sim).misuse);
}
