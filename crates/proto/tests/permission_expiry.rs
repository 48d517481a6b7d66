//! Permissions (RFC 8656 §9): installed by CreatePermission (several XOR-PEER-ADDRESS at
//! once), per IP address (any port), they let peers' datagrams through as Data
//! indications and clients' Send indications out; they last 300 seconds unless refreshed.

mod common;

use common::*;
use turnpike_stun::Method;

#[test]
fn create_permission_with_several_peers() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let resp = c
        .create_permission(&mut sim, &[peer_v4(), peer_v4_b()])
        .success();
    assert_eq!(resp.ty().method, Method::CREATE_PERMISSION);

    for peer in [peer_v4(), peer_v4_b()] {
        let got = sim.peer_send(relay, peer, b"hello").expect("permitted");
        assert_eq!(got.to, c.ft);
        assert_eq!(got.data_indication(), (peer, b"hello".to_vec()));
        let (r, p, payload, _) = c.send_indication(&mut sim, peer, b"back", &[]).datagram();
        assert_eq!((r, p, payload.as_slice()), (relay, peer, &b"back"[..]));
    }
    // A peer without a permission is dropped both ways.
    let stranger = sa("9.9.9.9:5000");
    assert_eq!(sim.peer_send(relay, stranger, b"x"), None);
    assert_eq!(
        c.send_indication(&mut sim, stranger, b"x", &[]),
        Outcome::None
    );
    assert_eq!(sim.server.stats().dropped_no_permission, 2);
    assert_eq!(sim.server.stats().to_client, 2);
    assert_eq!(sim.server.stats().to_peer, 2);
}

#[test]
fn permissions_are_per_ip_address_any_port() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[sa("8.8.8.8:1")]).success();
    for port in [1, 2, 5000, 65535] {
        let from = sa(&format!("8.8.8.8:{port}"));
        let got = sim
            .peer_send(relay, from, b"p")
            .expect("any port of the IP");
        assert_eq!(
            got.data_indication().0,
            from,
            "the port is reported as it was"
        );
        let (_, peer, _, _) = c.send_indication(&mut sim, from, b"q", &[]).datagram();
        assert_eq!(peer, from);
    }
    assert_eq!(
        sim.peer_send(relay, sa("8.8.4.4:1"), b"p"),
        None,
        "another IP"
    );
}

#[test]
fn permission_expires_after_300_seconds() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();

    sim.advance_secs(299);
    assert!(sim.peer_send(relay, peer_v4(), b"still").is_some());
    sim.advance_secs(2);
    let dropped = sim.server.stats().dropped_no_permission;
    assert_eq!(sim.peer_send(relay, peer_v4(), b"gone"), None);
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"gone", &[]),
        Outcome::None
    );
    assert_eq!(
        sim.server.stats().dropped_no_permission,
        dropped + 2,
        "drops are counted"
    );
    assert_eq!(
        sim.server.allocation_count(),
        1,
        "the allocation outlives the permission"
    );
}

#[test]
fn expiry_is_exact_even_between_sweeps() {
    // Expiry is checked on use, not only by the once-a-second sweep.
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    sim.advance(std::time::Duration::from_millis(300));
    c.create_permission(&mut sim, &[peer_v4()]).success();
    sim.advance(std::time::Duration::from_millis(299_999));
    assert!(sim.peer_send(relay, peer_v4(), b"in time").is_some());
    sim.advance(std::time::Duration::from_millis(1));
    assert_eq!(sim.peer_send(relay, peer_v4(), b"late"), None);
}

#[test]
fn refreshing_keeps_the_permission() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4(), peer_v4_b()])
        .success();
    sim.advance_secs(200);
    // Refresh only one of the two.
    c.create_permission(&mut sim, &[peer_v4()]).success();
    sim.advance_secs(200); // 400 s
    assert!(sim.peer_send(relay, peer_v4(), b"kept").is_some());
    assert_eq!(sim.peer_send(relay, peer_v4_b(), b"expired"), None);
    sim.advance_secs(101); // 501 s: 301 s after the refresh
    assert_eq!(sim.peer_send(relay, peer_v4(), b"expired now"), None);
}

#[test]
fn channel_bind_refreshes_the_permission_too() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    sim.advance_secs(250);
    c.channel_bind(&mut sim, 0x4001, peer_v4()).success();
    sim.advance_secs(250); // 500 s
    let got = sim
        .peer_send(relay, peer_v4(), b"via channel")
        .expect("refreshed");
    assert_eq!(got.channel_data(), (0x4001, b"via channel".to_vec()));
}

#[test]
fn create_permission_without_peer_is_400_and_is_all_or_nothing() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[]).assert_error(400);
    // One refused peer refuses the whole request: the allowed one is not installed.
    c.create_permission(&mut sim, &[peer_v4(), sa("10.0.0.1:1")])
        .assert_error(403);
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);
    // A malformed XOR-PEER-ADDRESS is 400.
    c.request(
        &mut sim,
        Method::CREATE_PERMISSION,
        &[A::Raw(0x0012, vec![0, 1, 0, 80, 1, 2, 3])],
    )
    .assert_error(400);
}

#[test]
fn create_permission_without_allocation_is_437() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()])
        .assert_error(437);
}

#[test]
fn ipv4_mapped_peer_address_is_the_ipv4_peer() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[sa("[::ffff:8.8.8.8]:5000")])
        .success();
    let got = sim.peer_send(relay, peer_v4(), b"x").expect("same peer");
    assert_eq!(got.data_indication().0, peer_v4());
}
