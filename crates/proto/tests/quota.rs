//! Quotas: allocations per user (486, RFC 8656 §7.2) counted by the user part of a REST
//! username, allocations in total and per-allocation permissions and ports (508), and the
//! per-allocation bandwidth cap (token bucket, both directions).

mod common;

use std::time::Duration;

use common::*;

#[test]
fn allocations_per_user_is_486_counted_by_rest_user_part() {
    let mut sim = Sim::with(|c| c.quotas.allocations_per_user = 2);
    let mut a = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX + 600);
    a.allocate(&mut sim, &[]).success();
    // Another credential of the same user (other expiry, other order) counts too.
    let username = format!("carol:{}", START_UNIX + 900);
    let password = turnpike_proto::auth::rest::rest_password(SECRET, &username);
    let mut b = TestClient::new(udp("203.0.113.10:40001"), &username, &password);
    b.allocate(&mut sim, &[]).success();
    let mut c = TestClient::rest(
        udp("203.0.113.10:40002"),
        SECRET,
        "carol",
        START_UNIX + 1200,
    );
    let resp = c.allocate(&mut sim, &[]);
    resp.assert_error(486);
    assert_eq!(
        resp.verify(&c.key()),
        Some(turnpike_stun::IntegrityKind::Sha1)
    );
    assert_eq!(sim.host.live.len(), 2, "nothing bound for the refused one");

    // Other users are not affected.
    let mut d = TestClient::rest(udp("203.0.113.10:40003"), SECRET, "dave", START_UNIX + 600);
    d.allocate(&mut sim, &[]).success();
    let mut alice = TestClient::alice("203.0.113.10:40004");
    alice.allocate(&mut sim, &[]).success();

    // Deleting one frees a slot.
    a.refresh(&mut sim, Some(0), &[]).success();
    c.allocate(&mut sim, &[]).success();
    assert_eq!(sim.host.ledger.total(), 4);
}

#[test]
fn allocations_total_is_508() {
    let mut sim = Sim::with(|c| c.quotas.allocations_total = 3);
    for i in 0..3u16 {
        let mut c = TestClient::alice(&format!("203.0.113.10:{}", 40000 + i));
        c.allocate(&mut sim, &[]).success();
    }
    let mut bob = TestClient::bob("203.0.113.10:41000");
    bob.allocate(&mut sim, &[]).assert_error(508);
    assert_eq!(sim.server.allocation_count(), 3);
    assert_eq!(sim.host.ledger.total(), 3);
    sim.advance_secs(601);
    bob.allocate(&mut sim, &[]).success();
}

#[test]
fn zero_means_unlimited() {
    let mut sim = Sim::with(|c| {
        c.quotas.allocations_per_user = 0;
        c.quotas.allocations_total = 0;
        c.quotas.permissions_per_allocation = 0;
    });
    for i in 0..150u16 {
        let mut c = TestClient::alice(&format!("203.0.113.10:{}", 40000 + i));
        c.allocate(&mut sim, &[]).success();
    }
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.11:1");
    let peers: Vec<_> = (0..100u8).map(|i| sa(&format!("8.8.{i}.1:1"))).collect();
    for chunk in peers.chunks(50) {
        c.create_permission(&mut sim, chunk).success();
    }
}

#[test]
fn default_allocations_per_user_is_enforced() {
    let mut sim = Sim::new();
    for i in 0..100u16 {
        let mut c = TestClient::alice(&format!("203.0.113.10:{}", 40000 + i));
        c.allocate(&mut sim, &[]).success();
    }
    let mut c = TestClient::alice("203.0.113.10:50000");
    c.allocate(&mut sim, &[]).assert_error(486);
}

#[test]
fn permissions_per_allocation_is_508() {
    let mut sim = Sim::with(|c| c.quotas.permissions_per_allocation = 3);
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[sa("8.8.8.1:1"), sa("8.8.8.2:1")])
        .success();
    // Two more at once would make four: refused as a whole.
    c.create_permission(&mut sim, &[sa("8.8.8.3:1"), sa("8.8.8.4:1")])
        .assert_error(508);
    assert_eq!(
        sim.peer_send(relay, sa("8.8.8.3:1"), b"x"),
        None,
        "none installed"
    );
    // Duplicates and refreshes do not count as new.
    c.create_permission(
        &mut sim,
        &[sa("8.8.8.3:1"), sa("8.8.8.3:2"), sa("8.8.8.1:9")],
    )
    .success();
    c.create_permission(&mut sim, &[sa("8.8.8.2:1")]).success();
    c.create_permission(&mut sim, &[sa("8.8.8.9:1")])
        .assert_error(508);
    // ChannelBind to a new IP needs a permission slot too.
    c.channel_bind(&mut sim, 0x4000, sa("8.8.8.9:1"))
        .assert_error(508);
    c.channel_bind(&mut sim, 0x4000, sa("8.8.8.1:1")).success();
    // Expired permissions free their slots.
    sim.advance_secs(301);
    c.create_permission(&mut sim, &[sa("8.8.8.9:1"), sa("8.8.8.8:1")])
        .success();
}

#[test]
fn host_port_exhaustion_is_508() {
    let mut sim = Sim::new();
    sim.host.port_limit = 2;
    let (_, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let (mut b, _) = allocated_alice(&mut sim, "203.0.113.10:40001");
    let mut c = TestClient::alice("203.0.113.10:40002");
    c.allocate(&mut sim, &[]).assert_error(508);
    assert_eq!(
        sim.host.ledger.total(),
        2,
        "the refused one's slot is given back"
    );
    assert_eq!(sim.server.allocation_count(), 2);
    b.refresh(&mut sim, Some(0), &[]).success();
    c.allocate(&mut sim, &[]).success();
}

#[test]
fn bandwidth_cap_drops_the_excess_and_refills_over_time() {
    let mut sim = Sim::with(|c| c.quotas.bandwidth_bytes_per_sec = 1000);
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let chunk = [7u8; 400];

    // A one-second burst: 400 + 400 pass, the third 400 does not fit in 1000.
    assert!(matches!(
        c.send_indication(&mut sim, peer_v4(), &chunk, &[]),
        Outcome::ToPeer { .. }
    ));
    assert!(
        sim.peer_send(relay, peer_v4(), &chunk).is_some(),
        "both directions share"
    );
    assert_eq!(c.channel_data(&mut sim, 0x4000, &chunk), Outcome::None);
    assert_eq!(sim.peer_send(relay, peer_v4(), &chunk), None);
    assert_eq!(sim.server.stats().dropped_bandwidth, 2);
    // 200 bytes are left.
    assert!(sim.peer_send(relay, peer_v4(), &[1u8; 200]).is_some());
    assert_eq!(sim.peer_send(relay, peer_v4(), &[1u8; 1]), None);
    assert_eq!(sim.server.stats().dropped_bandwidth, 3);

    // Half a second refills 500 bytes.
    sim.advance(Duration::from_millis(500));
    assert!(matches!(
        c.channel_data(&mut sim, 0x4000, &chunk),
        Outcome::ToPeer { .. }
    ));
    assert_eq!(c.channel_data(&mut sim, 0x4000, &chunk), Outcome::None);
    // A long pause refills to one second's worth, not more.
    sim.advance_secs(10);
    assert!(matches!(
        c.channel_data(&mut sim, 0x4000, &[0u8; 1000]),
        Outcome::ToPeer { .. }
    ));
    assert_eq!(c.channel_data(&mut sim, 0x4000, &[0u8; 1]), Outcome::None);
    assert_eq!(sim.server.stats().dropped_bandwidth, 5);
}

#[test]
fn bandwidth_cap_is_per_allocation() {
    let mut sim = Sim::with(|c| c.quotas.bandwidth_bytes_per_sec = 1000);
    let (mut a, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let (mut b, _) = allocated_alice(&mut sim, "203.0.113.10:40001");
    for c in [&mut a, &mut b] {
        c.create_permission(&mut sim, &[peer_v4()]).success();
        assert!(matches!(
            c.send_indication(&mut sim, peer_v4(), &[0u8; 1000], &[]),
            Outcome::ToPeer { .. }
        ));
    }
    assert_eq!(sim.server.stats().dropped_bandwidth, 0);
}
