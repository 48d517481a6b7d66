//! What an operator can ask of a core: list sessions (with filters), end them, revoke a
//! user or one username, drain; and the reasons credentials and peers are refused, as
//! counted and reported.

mod common;

use common::*;
use turnpike_proto::auth::AuthFailure;
use turnpike_proto::policy::DenyRule;
use turnpike_proto::server::{Revocation, SessionFilter};
use turnpike_proto::{ClientTransport, EndReason, Event, Reject};

fn ended(sim: &mut Sim) -> Vec<EndReason> {
    let mut out = Vec::new();
    while let Some(e) = sim.server.poll_event() {
        if let Event::AllocationEnded(r) = e {
            out.push(r.reason);
        }
    }
    out
}

#[test]
fn sessions_list_filter_and_end() {
    let mut sim = Sim::new();
    let mut a = TestClient::alice("203.0.113.10:40000");
    let relayed = a.allocate(&mut sim, &[]).success().relayed();
    a.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    a.channel_data(&mut sim, 0x4000, b"twelve bytes");
    let mut b = TestClient::bob("203.0.113.11:40000");
    b.allocate(&mut sim, &[]).success();
    let mut t = TestClient::new(tcp("203.0.113.12:40000"), ALICE.0, ALICE.1);
    t.allocate(&mut sim, &[]).success();
    sim.advance_secs(7);
    let now = sim.now();

    let all = sim.server.sessions(now, &SessionFilter::default());
    assert_eq!(all.len(), 3);
    let s = all.iter().find(|s| s.five_tuple == a.ft).unwrap();
    assert_eq!(&*s.username, ALICE.0);
    assert_eq!(s.relayed, relayed);
    assert_eq!(s.permissions, vec![peer_v4().ip()]);
    assert_eq!(s.channels, vec![(0x4000, peer_v4())]);
    assert_eq!((s.to_peer.packets, s.to_peer.bytes), (1, 12));
    assert_eq!(s.age.as_secs(), 7);
    assert!(s.expires_in.as_secs() > 500);
    let ids: std::collections::HashSet<u64> = all.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 3, "session numbers are unique");

    let by = |f: SessionFilter| sim.server.sessions(now, &f).len();
    let user = |u: &str| SessionFilter {
        user: Some(u.into()),
        ..SessionFilter::default()
    };
    assert_eq!(by(user("alice")), 2);
    assert_eq!(by(user("bob")), 1);
    assert_eq!(by(user("carol")), 0);
    let peer = SessionFilter {
        peer: Some(peer_v4().ip()),
        ..SessionFilter::default()
    };
    assert_eq!(by(peer), 1);
    let tcp_only = SessionFilter {
        transport: Some(ClientTransport::Tcp),
        ..SessionFilter::default()
    };
    assert_eq!(by(tcp_only), 1);
    let one = SessionFilter {
        id: Some(s.id),
        ..SessionFilter::default()
    };
    assert_eq!(by(one.clone()), 1);

    // End one by number: its record says so, and it is gone (437 on Refresh).
    assert_eq!(sim.server.end_sessions(now, &one, &mut sim.host), 1);
    assert_eq!(ended(&mut sim), vec![EndReason::Ended]);
    a.refresh(&mut sim, Some(600), &[]).assert_error(437);
    // End all of alice's: the TCP one is left of hers.
    assert_eq!(
        sim.server.end_sessions(now, &user("alice"), &mut sim.host),
        1
    );
    assert_eq!(sim.server.sessions(now, &SessionFilter::default()).len(), 1);
    assert_eq!(
        sim.server.stats().ended_by_reason[EndReason::Ended.index()],
        2
    );
    assert_eq!(sim.host.slots_held(), 1, "quota slots given back");
}

#[test]
fn a_revoked_user_is_refused_and_its_allocations_end() {
    let mut sim = Sim::new();
    let expiry = START_UNIX + 3600;
    let mut c1 = TestClient::rest(udp("203.0.113.20:40000"), SECRET, "carol", expiry);
    c1.allocate(&mut sim, &[]).success();
    let mut c2 = TestClient::rest(udp("203.0.113.21:40000"), SECRET, "carol", expiry + 60);
    c2.allocate(&mut sim, &[]).success();
    let mut d = TestClient::rest(udp("203.0.113.22:40000"), SECRET, "dave", expiry);
    d.allocate(&mut sim, &[]).success();
    let now = sim.now();

    // Revoking the user part ends every credential of hers, not dave's.
    let n = sim.server.revoke(
        now,
        Revocation {
            name: "carol".into(),
            until: Some(START_UNIX + 100),
        },
        &mut sim.host,
    );
    assert_eq!(n, 2);
    assert_eq!(ended(&mut sim), vec![EndReason::Revoked; 2]);
    // A good password no longer helps: 401, counted as revoked.
    c1.allocate(&mut sim, &[]).assert_error(401);
    assert_eq!(sim.server.stats().auth_failures(AuthFailure::Revoked), 1);
    d.refresh(&mut sim, Some(600), &[]).success();
    assert_eq!(sim.server.revocations(sim.unix_now()).len(), 1);
    // It lapses at `until`.
    sim.advance_secs(101);
    assert!(sim.server.revocations(sim.unix_now()).is_empty());
    c1.allocate(&mut sim, &[]).success();

    // One exact username: lapses with the credential itself by default.
    let name = c1.username.clone();
    let now = sim.now();
    let n = sim.server.revoke(
        now,
        Revocation {
            name: name.clone(),
            until: None,
        },
        &mut sim.host,
    );
    assert_eq!(n, 1);
    let listed = sim.server.revocations(sim.unix_now());
    assert_eq!(listed[0].until, Some(expiry), "the credential's own expiry");
    c1.allocate(&mut sim, &[]).assert_error(401);
    c2.allocate(&mut sim, &[]).success();
    assert!(sim.server.unrevoke(&name));
    c1.allocate(&mut sim, &[]).success();
}

#[test]
fn draining_refuses_new_allocations_with_300_or_508() {
    let mut sim = Sim::new();
    let mut old = TestClient::alice("203.0.113.30:40000");
    old.allocate(&mut sim, &[]).success();
    sim.server.set_draining(true);
    // No sibling configured: 508.
    let mut new = TestClient::bob("203.0.113.31:40000");
    new.allocate(&mut sim, &[]).assert_error(508);
    assert_eq!(sim.server.stats().refused(Reject::InsufficientCapacity), 1);
    // The existing allocation goes on.
    old.refresh(&mut sim, Some(600), &[]).success();
    old.create_permission(&mut sim, &[peer_v4()]).success();

    // With a sibling: 300 carrying its address.
    let mut sim = Sim::with(|c| c.alternates.udp = vec![sa("198.51.100.20:3478")]);
    sim.server.set_draining(true);
    let mut new = TestClient::bob("203.0.113.31:40000");
    let r = new.allocate(&mut sim, &[]);
    r.assert_error(300);
    assert_eq!(r.alternate_servers(), vec![sa("198.51.100.20:3478")]);
    assert_eq!(sim.server.stats().refused(Reject::TryAlternate), 1);
    sim.server.set_draining(false);
    new.allocate(&mut sim, &[]).success();
}

#[test]
fn refused_credentials_and_peers_say_why() {
    let mut sim = Sim::new();
    // Wrong password of a static user.
    let mut c = TestClient::new(udp("203.0.113.40:40000"), ALICE.0, "wrong");
    c.allocate(&mut sim, &[]).assert_error(401);
    // Unknown user (not REST-shaped either).
    let mut c = TestClient::new(udp("203.0.113.41:40000"), "mallory", "x");
    c.allocate(&mut sim, &[]).assert_error(401);
    // Expired REST credential.
    let mut c = TestClient::rest(udp("203.0.113.42:40000"), SECRET, "carol", START_UNIX - 1);
    c.allocate(&mut sim, &[]).assert_error(401);
    // Minted with another secret.
    let mut c = TestClient::rest(
        udp("203.0.113.43:40000"),
        b"not ours",
        "carol",
        START_UNIX + 60,
    );
    c.allocate(&mut sim, &[]).assert_error(401);
    let stats = sim.server.stats();
    assert_eq!(stats.auth_failures(AuthFailure::BadIntegrity), 2);
    assert_eq!(stats.auth_failures(AuthFailure::UnknownUser), 1);
    assert_eq!(stats.auth_failures(AuthFailure::Expired), 1);

    let mut reasons = Vec::new();
    while let Some(e) = sim.server.poll_event() {
        if let Event::AuthFailed {
            reason, username, ..
        } = e
        {
            reasons.push((reason, username.map(String::from)));
        }
    }
    assert_eq!(
        reasons.len(),
        4,
        "one notice each, none for the 401 challenges"
    );
    assert_eq!(
        reasons[1],
        (AuthFailure::UnknownUser, Some("mallory".to_owned()))
    );

    // A peer refused by the default rules and by the operator's own.
    let mut sim = Sim::with(|c| c.peers.deny = vec![cidr("198.51.100.0/24")]);
    let mut a = TestClient::alice("203.0.113.44:40000");
    a.allocate(&mut sim, &[]).success();
    a.create_permission(&mut sim, &[sa("10.1.2.3:9")])
        .assert_error(403);
    a.channel_bind(&mut sim, 0x4001, sa("198.51.100.7:9"))
        .assert_error(403);
    let stats = sim.server.stats();
    assert_eq!(stats.peer_denied(DenyRule::Private), 1);
    assert_eq!(stats.peer_denied(DenyRule::Operator), 1);
    assert_eq!(stats.refused(Reject::Forbidden), 2);
    let denied: Vec<_> = std::iter::from_fn(|| sim.server.poll_event())
        .filter_map(|e| match e {
            Event::PeerDenied { peer, rule, .. } => Some((peer, rule)),
            _ => None,
        })
        .collect();
    assert_eq!(
        denied,
        vec![
            (sa("10.1.2.3:9"), DenyRule::Private),
            (sa("198.51.100.7:9"), DenyRule::Operator)
        ]
    );
}

#[test]
fn notices_are_bounded_under_a_flood() {
    let mut sim = Sim::new();
    for i in 0..1000u32 {
        let client = format!("203.0.113.50:{}", 10_000 + i);
        let mut c = TestClient::new(udp(&client), ALICE.0, "wrong");
        c.allocate(&mut sim, &[]).assert_error(401);
    }
    assert_eq!(
        sim.server.stats().auth_failures(AuthFailure::BadIntegrity),
        1000
    );
    let queued = std::iter::from_fn(|| sim.server.poll_event()).count();
    assert_eq!(queued, turnpike_proto::server::MAX_QUEUED_NOTICES);
}

#[test]
fn gauges_and_counters_follow_allocations() {
    let mut sim = Sim::new();
    let mut a = TestClient::alice("203.0.113.60:40000");
    a.allocate(&mut sim, &[]).success();
    a.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    a.channel_data(&mut sim, 0x4000, b"0123456789");
    let mut t = TestClient::new(tcp("203.0.113.61:40000"), BOB.0, BOB.1);
    t.allocate(&mut sim, &[]).success();
    let g = sim.server.gauges(sim.now());
    assert_eq!(g.allocations[ClientTransport::Udp.index()][0], 1);
    assert_eq!(g.allocations[ClientTransport::Tcp.index()][0], 1);
    assert_eq!((g.permissions, g.channels), (1, 1));
    assert_eq!(g.live_to_peer[0].bytes, 10);
    sim.advance_secs(20);
    a.refresh(&mut sim, Some(0), &[]).success();
    let s = sim.server.stats();
    assert_eq!(s.created[0][0] + s.created[1][0], 2);
    assert_eq!(s.ended[0][0], 1);
    assert_eq!(s.ended_to_peer[0].bytes, 10, "moved from live to ended");
    assert_eq!(sim.server.gauges(sim.now()).live_to_peer[0].bytes, 0);
    assert_eq!(s.lifetime.count, 1);
    assert_eq!(s.lifetime.buckets[1], 1, "20 s falls in (10, 30]");
    assert_eq!(s.volume.buckets[0], 1, "10 bytes falls in [0, 1000]");
}
