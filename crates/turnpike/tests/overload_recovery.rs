//! After an overload the server recovers at once (issue 16): a moderate, loss-free load
//! is loss-free again in the run that follows a bounded overload through the same
//! allocations, with only the overload run's drain (500 ms) between the two.
//!
//! The overload offers as much as the generator can send (a target of 1 M packets/s for
//! 2 s, at most 2 M packets) to 50 allocations; the server and the kernel drop what they
//! cannot take. What happens right after is the property: whatever the overload left in
//! the server's socket queues or the generator's own is gone by the time the next run
//! starts, and the moderate run loses nothing. Packets of the overload that arrive during
//! the next run carry the overload's run id and are not counted as the next run's.

mod common;

use std::time::Duration;

use common::ServerProcess;
use turnpike_bench::load::{Mode, RunParams, Session, Shape, Target};
use turnpike_bench::{Credentials, LoadReport};

const SECRET: &str = "overload-secret";
const CLIENTS: usize = 50;

fn run(session: &mut Session, total_pps: f64, secs: u64) -> LoadReport {
    let p = RunParams {
        rate: total_pps / CLIENTS as f64,
        size: 120,
        duration: Duration::from_secs(secs),
        shape: Shape::Steady,
        fps: 30,
        drain: Duration::from_millis(500),
        max_packets: 2_000_000,
        recv_batch: 64,
    };
    let r = session.run(&p, &|_, _| {});
    eprintln!(
        "target {total_pps} pkt/s for {secs} s: offered {:.0} pkt/s, sent {}, delivered {}, \
         lost {} ({:.2} %), send errors {}, p99 {:.0} µs",
        r.offered_pps, r.sent, r.delivered, r.lost, r.loss_pct, r.send_errors, r.latency.p99_us
    );
    r
}

#[test]
fn a_moderate_load_right_after_an_overload_loses_nothing() {
    let config = format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"overload.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"29650-29749\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n\
         [runtime]\nworkers = 1\n"
    );
    // One worker: on two cores a two-worker server can keep up with the generator (both
    // debug builds), and then there is no overload to recover from.
    let server = ServerProcess::start("overload", &config);
    let target = Target::Turn {
        server: server.udp[0],
        credentials: Credentials::Rest {
            secret: SECRET.into(),
            user: "overload".into(),
        },
    };
    let mut session =
        Session::setup(&target, CLIENTS, 1, Mode::Channel, None, &|_| {}).expect("setup");

    // The moderate load is loss-free on a rested server ...
    let before = run(&mut session, 2_000.0, 2);
    assert_eq!(before.lost, 0, "loss before any overload: {before:?}");
    for round in 0..2 {
        // ... an overload loses (else it was no overload and this test proves nothing) ...
        let over = run(&mut session, 1_000_000.0, 2);
        assert!(
            over.loss_pct > 1.0,
            "round {round}: the overload lost nothing ({over:?}): not an overload"
        );
        // ... and the same moderate load right after it loses nothing.
        let after = run(&mut session, 2_000.0, 2);
        assert_eq!(after.send_errors, 0, "round {round}: {after:?}");
        assert_eq!(
            after.lost, 0,
            "round {round}: loss after the overload: {after:?}"
        );
    }
    drop(session);
    server.stop();
}
