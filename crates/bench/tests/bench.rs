//! End-to-end tests: the bench (binary and library) against the real turnpike server on
//! loopback. Each test starts its own server on a free port with its own relay range.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{ServerProcess, bench};
use serde_json::Value;
use turnpike_bench::load::{Mode, RunParams, Session, Shape, Target};
use turnpike_bench::search::{SearchParams, plot, search};
use turnpike_bench::{Credentials, TurnClient};

/// The tests run one at a time: a calibration flood next to a loss-free assertion
/// would make it flaky on a 2-core machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

#[test]
fn load_two_clients_no_loss_json() {
    let _serial = serial();
    let server = ServerProcess::start("load", "41000-41099");
    let addr = server.udp.to_string();
    let out = bench(
        &[
            "load",
            "--server",
            &addr,
            "--secret",
            "S",
            "--clients",
            "2",
            "--rate",
            "50",
            "--duration",
            "2",
            "--json",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    let v: Value = serde_json::from_str(&out).expect("JSON output parses");
    let sent = f(&v, &["sent"]);
    assert!((190.0..=210.0).contains(&sent), "sent {sent}");
    assert_eq!(f(&v, &["lost"]), 0.0, "{out}");
    assert_eq!(f(&v, &["loss_pct"]), 0.0);
    assert_eq!(f(&v, &["delivered"]), sent);
    assert_eq!(f(&v, &["duplicates"]), 0.0);
    let p50 = f(&v, &["latency", "p50_us"]);
    let p99 = f(&v, &["latency", "p99_us"]);
    assert!(p50 > 0.0 && p50 <= p99, "p50 {p50} p99 {p99}");
    assert!(p99 < 50_000.0, "p99 {p99} µs on loopback at 100 pkt/s");
    assert!((f(&v, &["fairness", "jain_index"]) - 1.0).abs() < 1e-6);
    assert_eq!(v["mode"], "channel");
    assert_eq!(v["generator_bound"], false);
}

#[test]
fn storm_completes_allocations() {
    let _serial = serial();
    let server = ServerProcess::start("storm", "41100-41199");
    let addr = server.udp.to_string();
    let out = bench(
        &[
            "storm",
            "--server",
            &addr,
            "--secret",
            "S",
            "--allocations",
            "60",
            "--concurrency",
            "3",
            "--json",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    let v: Value = serde_json::from_str(&out).expect("JSON output parses");
    assert_eq!(f(&v, &["allocated"]), 60.0, "{out}");
    assert_eq!(f(&v, &["failed"]), 0.0);
    assert_eq!(f(&v, &["deleted"]), 60.0);
    assert!(f(&v, &["allocations_per_s"]) > 0.0);
}

#[test]
fn calibrate_reports_a_positive_ceiling() {
    let _serial = serial();
    let out = bench(
        &[
            "calibrate",
            "--clients",
            "2",
            "--duration",
            "0.5",
            "--json",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    let v: Value = serde_json::from_str(&out).expect("JSON output parses");
    assert!(f(&v, &["ceiling_pps"]) > 0.0, "{out}");
    assert!(f(&v, &["flood", "delivered"]) > 0.0);
    assert!(v["paced"].is_null());

    // With --rate, the same paced load through the reflector: nothing lost.
    let out = bench(
        &[
            "calibrate",
            "--clients",
            "2",
            "--duration",
            "0.5",
            "--rate",
            "100",
            "--csv",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("run,target,"));
    let paced: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(paced[0], "paced");
    assert_eq!(paced[14], "0", "lost: {out}");
}

#[test]
fn library_send_indications_search_and_plot() {
    let _serial = serial();
    let server = ServerProcess::start("lib", "41200-41299");
    let credentials = Credentials::Rest {
        secret: "S".into(),
        user: "lib".into(),
    };
    // The client alone: allocate, permission, refresh, delete.
    let mut c = TurnClient::connect(server.udp, &credentials).unwrap();
    let relayed = c.allocate(Some(300)).unwrap();
    assert!(relayed.ip().is_loopback());
    assert_eq!(c.challenges, 1, "one 401 round trip");
    c.create_permission("127.0.0.1:9".parse().unwrap()).unwrap();
    assert!(c.refresh(120).unwrap() > 0);
    assert_eq!(c.refresh(0).unwrap(), 0);

    // A wrong secret is refused, not retried forever.
    let bad = Credentials::Rest {
        secret: "wrong".into(),
        user: "x".into(),
    };
    let mut c = TurnClient::connect(server.udp, &bad).unwrap();
    assert!(c.allocate(None).is_err());
    let bad_target = Target::Turn {
        server: server.udp,
        credentials: bad,
    };
    let err = Session::setup(&bad_target, 2, 1, Mode::Channel, None, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    // Send indications through the relay, bursty.
    let target = Target::Turn {
        server: server.udp,
        credentials,
    };
    let mut session = Session::setup(&target, 2, 1, Mode::Send, None, &|_| {}).unwrap();
    let params = RunParams {
        rate: 60.0,
        size: 200,
        duration: Duration::from_millis(800),
        shape: Shape::Bursty,
        fps: 20,
        drain: Duration::from_millis(200),
        max_packets: 10_000,
        recv_batch: 8,
    };
    let r = session.run(&params, &|_, _| {});
    assert!(r.sent >= 80, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.mode, "send");
    assert_eq!(r.refreshes, 0);

    // Refreshes in the middle of a run (every 200 ms here, two minutes by default)
    // succeed and cost no packets.
    session.set_refresh_every(Duration::from_millis(200));
    let r = session.run(&params, &|_, _| {});
    assert!(r.refreshes >= 4, "{r:?}");
    assert_eq!((r.lost, r.send_errors), (0, 0), "{r:?}");
    session.set_refresh_every(Duration::from_secs(120));

    // A two-trial search whose top passes, and its plot.
    let p = SearchParams {
        trial: RunParams {
            duration: Duration::from_millis(500),
            shape: Shape::Steady,
            ..params
        },
        min_pps: 50.0,
        max_pps: 200.0,
        max_loss_pct: 0.1,
        max_p99_us: None,
        resolution: 0.05,
        max_trials: 3,
        max_time: Duration::from_secs(5),
    };
    let s = search(&mut session, &p, None, &|_, _| {}, &|_, _| {});
    assert!(s.at_upper_bound, "{s:?}");
    assert!((190.0..=200.0).contains(&s.max_lossless_pps), "{s:?}");
    let svg = std::env::temp_dir().join(format!("turnpike-bench-{}.svg", std::process::id()));
    plot(&s, &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(text.starts_with("<svg") && text.contains("offered packets/s"));
    session.close();
}

#[test]
fn load_with_calibrate_and_csv() {
    let _serial = serial();
    let server = ServerProcess::start("cal", "41300-41399");
    let addr = server.udp.to_string();
    let out = bench(
        &[
            "load",
            "--server",
            &addr,
            "--secret",
            "S",
            "--clients",
            "2",
            "--rate",
            "40",
            "--duration",
            "0.5",
            "--mode",
            "send",
            "--calibrate",
            "--csv",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(header.len(), row.len());
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("mode"), "send");
    assert_eq!(col("lost"), "0", "{out}");
    assert!(col("ceiling_pps").parse::<f64>().unwrap() > 0.0);
    assert_eq!(col("generator_bound"), "false");
}
