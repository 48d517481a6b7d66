//! Every allocation leaves one accounting record when it ends (`TurnServer::poll_event`):
//! its user, 5-tuple, relayed addresses, how long it lived, datagrams and payload bytes
//! each way, and why it ended (deleted, expired, credential expired, connection closed).

mod common;

use std::time::Duration;

use common::*;
use turnpike_proto::{AllocationRecord, EndReason, Event, Usage};

fn record(sim: &mut Sim) -> AllocationRecord {
    let Some(Event::AllocationEnded(record)) = sim.server.poll_event() else {
        panic!("an allocation's record");
    };
    assert_eq!(sim.server.poll_event(), None, "one record per allocation");
    *record
}

#[test]
fn a_deleted_allocation_reports_its_traffic_and_lifetime() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let relayed = c.allocate(&mut sim, &[]).success().relayed()[0];
    let relay = sim.host.relay_of(relayed);
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    for _ in 0..3 {
        c.channel_data(&mut sim, 0x4000, b"ten bytes!");
    }
    c.send_indication(&mut sim, peer_v4(), b"five!", &[]);
    for _ in 0..2 {
        assert!(sim.peer_send(relay, peer_v4(), b"seven!!").is_some());
    }
    // Dropped datagrams (no permission) are not counted.
    assert!(
        sim.peer_send(relay, sa("198.51.100.99:9"), b"nope")
            .is_none()
    );
    assert_eq!(sim.server.poll_event(), None, "nothing before the end");
    sim.advance_secs(30);
    c.refresh(&mut sim, Some(0), &[]).success();
    let r = record(&mut sim);
    assert_eq!(&*r.username, ALICE.0);
    assert_eq!(r.five_tuple, c.ft);
    assert_eq!(r.relayed, vec![relayed]);
    assert_eq!(r.duration, Duration::from_secs(30));
    assert_eq!(
        r.to_peer,
        Usage {
            packets: 4,
            bytes: 35
        }
    );
    assert_eq!(
        r.to_client,
        Usage {
            packets: 2,
            bytes: 14
        }
    );
    assert_eq!(r.reason, EndReason::Deleted);
}

#[test]
fn expiry_and_a_closed_connection_say_so() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Lifetime(600)]).success();
    sim.advance_secs(601);
    let r = record(&mut sim);
    assert_eq!(r.reason, EndReason::Expired);
    assert_eq!(r.to_peer, Usage::default());

    let mut t = TestClient::new(tcp("203.0.113.10:40001"), ALICE.0, ALICE.1);
    t.allocate(&mut sim, &[]).success();
    sim.advance_secs(5);
    sim.connection_closed(t.ft);
    let r = record(&mut sim);
    assert_eq!(r.reason, EndReason::ConnectionClosed);
    assert_eq!(r.duration, Duration::from_secs(5));
    assert_eq!(r.five_tuple, t.ft);
}

#[test]
fn a_credential_that_runs_out_ends_its_allocation_with_that_reason() {
    let mut sim = Sim::with(|c| c.turn.strict_expiry = true);
    let mut c = TestClient::rest(udp("203.0.113.10:40000"), SECRET, "carol", START_UNIX + 300);
    c.allocate(&mut sim, &[]).success();
    sim.advance_secs(302);
    let r = record(&mut sim);
    assert_eq!(r.reason, EndReason::CredentialExpired);
    assert!(r.username.ends_with(":carol"));
}
