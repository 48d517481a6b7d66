//! End-to-end tests: the bench (binary and library) against the real turnpike server on
//! loopback. Each test starts its own server on a free port with its own relay range.

mod common;

use std::sync::MutexGuard;
use std::time::Duration;

use common::{ServerProcess, bench, bench_fails, credentials, serial};
use serde_json::Value;
use turnpike_bench::TurnClient;
use turnpike_bench::load::{Mode, RunParams, Session, Shape, Target};
use turnpike_bench::search::{SearchParams, plot, search};

/// A test's set-up: its turn (see [`serial`]) and a server on relay ports `ports`, with
/// its UDP address as text.
fn start(tag: &str, ports: &str) -> (MutexGuard<'static, ()>, ServerProcess, String) {
    let serial = serial();
    let server = ServerProcess::start(tag, ports);
    let addr = server.udp.to_string();
    (serial, server, addr)
}

/// Runs `turnpike-bench <command> --server <addr> --secret S <args>` (bounded); returns
/// its stdout.
fn run(command: &str, addr: &str, args: &[&str]) -> String {
    let mut all = vec![command, "--server", addr, "--secret", "S"];
    all.extend_from_slice(args);
    bench(&all, Duration::from_secs(20))
}

/// The JSON document `out`.
fn json(out: &str) -> Value {
    serde_json::from_str(out).expect("JSON output parses")
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
    let (_serial, _server, addr) = start("load", "41000-41099");
    let out = run(
        "load",
        &addr,
        &[
            "--clients",
            "2",
            "--rate",
            "50",
            "--duration",
            "2",
            "--json",
            "--quiet",
            "--drain-ms",
            "3000",
        ],
    );
    let v = json(&out);
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
    let (_serial, _server, addr) = start("storm", "41100-41199");
    let out = run(
        "storm",
        &addr,
        &[
            "--allocations",
            "60",
            "--concurrency",
            "3",
            "--json",
            "--quiet",
        ],
    );
    let v = json(&out);
    assert_eq!(f(&v, &["allocated"]), 60.0, "{out}");
    assert_eq!(f(&v, &["failed"]), 0.0);
    assert_eq!(f(&v, &["deleted"]), 60.0);
    assert!(f(&v, &["allocations_per_s"]) > 0.0);
}

#[test]
fn calibrate_reports_a_positive_ceiling() {
    let _serial = serial();
    let calibrate = |extra: &[&str]| {
        let args = [
            "calibrate",
            "--clients",
            "2",
            "--duration",
            "0.5",
            "--quiet",
        ];
        bench(&[&args[..], extra].concat(), Duration::from_secs(20))
    };
    let out = calibrate(&["--json"]);
    let v = json(&out);
    assert!(f(&v, &["ceiling_pps"]) > 0.0, "{out}");
    assert!(f(&v, &["flood", "delivered"]) > 0.0);
    assert!(v["paced"].is_null());

    // With --rate, the same paced load through the reflector: nothing lost.
    let out = calibrate(&["--rate", "100", "--csv"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("run,target,"));
    let paced: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(paced[0], "paced");
    assert_eq!(paced[14], "0", "lost: {out}");
}

#[test]
fn library_send_indications_search_and_plot() {
    let (_serial, server, _) = start("lib", "41200-41299");
    let credentials = credentials("lib");
    // The client alone: allocate, permission, refresh, delete.
    let mut c = TurnClient::connect(server.udp, &credentials).unwrap();
    let relayed = c.allocate(Some(300)).unwrap();
    assert!(relayed.ip().is_loopback());
    assert_eq!(c.challenges, 1, "one 401 round trip");
    c.create_permission("127.0.0.1:9".parse().unwrap()).unwrap();
    assert!(c.refresh(120).unwrap() > 0);
    assert_eq!(c.refresh(0).unwrap(), 0);

    // A wrong secret is refused, not retried forever.
    let bad = turnpike_bench::Credentials::Rest {
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
        // Ends at once when everything has arrived; the rest is room for a stalled
        // CI machine.
        drain: Duration::from_secs(2),
        max_packets: 10_000,
        recv_batch: 8,
    };
    // The drain is a bound, not a wait: the run ends once everything has arrived.
    let started = std::time::Instant::now();
    let long_drain = RunParams {
        drain: Duration::from_secs(30),
        ..params
    };
    let r = session.run(&long_drain, &|_, _| {});
    assert!(started.elapsed() < Duration::from_secs(15), "{r:?}");
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
        max_growth: 1.0,
        max_loss_pct: 0.1,
        max_p99_us: None,
        resolution: 0.05,
        max_trials: 3,
        max_time: Duration::from_secs(5),
    };
    let s = search(&mut session, &p, None, &|_, _| {}, &|_, _| {});
    assert!(s.at_upper_bound, "{s:?}");
    assert_eq!(s.trials.len(), 1, "a fixed top that passes ends the search");
    assert!((190.0..=200.0).contains(&s.max_lossless_pps), "{s:?}");
    // A top that may grow: it doubles while the trials pass (200, 400, 800 here, then
    // out of trials), so a low first guess does not end the search after one trial.
    let grown = search(
        &mut session,
        &SearchParams {
            max_growth: 4.0,
            ..p
        },
        None,
        &|_, _| {},
        &|_, _| {},
    );
    let targets: Vec<f64> = grown.trials.iter().map(|t| t.target_pps).collect();
    assert_eq!(targets, [200.0, 400.0, 800.0], "{grown:?}");
    assert!(
        grown.at_upper_bound && grown.max_lossless_pps > 700.0,
        "{grown:?}"
    );
    let svg = std::env::temp_dir().join(format!("turnpike-bench-{}.svg", std::process::id()));
    plot(&s, &svg, "2 clients × 120 B").unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(text.starts_with("<svg") && text.contains("offered packets/s"));
    assert!(text.contains("2 clients × 120 B") && text.contains("max with loss ≤ 0.1 %: ≥ "));
    session.close();
}

#[test]
fn load_with_calibrate_and_csv() {
    let (_serial, _server, addr) = start("cal", "41300-41399");
    let out = run(
        "load",
        &addr,
        &[
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
            "--drain-ms",
            "3000",
        ],
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

#[test]
fn storm_event_engine_reuses_sockets() {
    let (_serial, _server, addr) = start("storm-engine", "41400-41499");
    let out = run(
        "storm",
        &addr,
        &["--allocations", "200", "--json", "--quiet"],
    );
    let v = json(&out);
    assert_eq!(f(&v, &["allocated"]), 200.0, "{out}");
    assert_eq!(f(&v, &["failed"]), 0.0, "{out}");
    assert_eq!(f(&v, &["deleted"]), 200.0, "{out}");
    assert_eq!((f(&v, &["concurrency"]), f(&v, &["threads"])), (64.0, 1.0));
    // Unauthenticated Allocate, signed Allocate, Refresh 0: three requests each, plus
    // whatever had to be sent again.
    let rtx = f(&v, &["retransmissions"]);
    assert_eq!(f(&v, &["requests_sent"]), 600.0 + rtx, "{out}");
    // One socket per slot, reused for every allocation after it.
    assert!(f(&v, &["sockets_opened"]) <= 64.0, "{out}");
    assert_eq!(f(&v, &["mismatch_retries"]), 0.0, "{out}");
    assert!(f(&v, &["generator_cpu_s"]) > 0.0);

    // Two threads with poll(2), static credentials refused: every allocation fails
    // cleanly with the 401, nothing hangs.
    let out = bench_fails(&[
        "storm",
        "--server",
        &addr,
        "--user",
        "nobody",
        "--password",
        "wrong",
        "--allocations",
        "20",
        "--concurrency",
        "4",
        "--threads",
        "2",
        "--poller",
        "poll",
        "--json",
        "--quiet",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON output parses");
    assert_eq!((f(&v, &["allocated"]), f(&v, &["failed"])), (0.0, 20.0));
    assert!(
        v["first_error"].as_str().unwrap_or("").contains("401"),
        "{v}"
    );
}

/// Starts `turnpike-bench hold --server <addr> --secret S <args>` with stdin and stdout
/// piped, and returns the child once it printed its `holding N allocations` line (and
/// that line).
fn start_hold(
    addr: &str,
    args: &[&str],
) -> (std::process::Child, std::process::ChildStdout, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnpike-bench"))
        .args(["hold", "--server", addr, "--secret", "S"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start turnpike-bench hold");
    let mut stdout = child.stdout.take().unwrap();
    // Byte by byte up to the first newline, so that nothing after it is consumed.
    let mut line = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut b = [0u8; 1];
    while std::time::Instant::now() < deadline {
        match stdout.read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            _ => break,
        }
    }
    (child, stdout, String::from_utf8_lossy(&line).into_owned())
}

/// Waits (bounded) for the child to exit; returns its success and the rest of stdout.
fn finish_hold(
    mut child: std::process::Child,
    mut stdout: std::process::ChildStdout,
) -> (bool, String) {
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("turnpike-bench hold did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), reader.join().unwrap())
}

/// The JSON documents printed one after the other.
fn json_stream(s: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(s)
        .into_iter::<Value>()
        .map(|v| v.expect("JSON output parses"))
        .collect()
}

#[test]
fn hold_keeps_allocations_until_stdin_closes() {
    let (_serial, _server, addr) = start("hold", "41500-41599");
    let (child, stdout, line) = start_hold(
        &addr,
        &[
            "--clients",
            "50",
            "--concurrency",
            "16",
            "--refresh-secs",
            "0.3",
            "--json",
        ],
    );
    assert_eq!(line, "holding 50 allocations");
    std::thread::sleep(Duration::from_secs(1));
    let mut child = child;
    drop(child.stdin.take()); // EOF: the hold ends.
    let (ok, rest) = finish_hold(child, stdout);
    assert!(ok, "{rest}");
    let docs = json_stream(&rest);
    assert_eq!(docs.len(), 2, "{rest}");
    let (begin, end) = (&docs[0], &docs[1]);
    assert_eq!(f(begin, &["held"]), 50.0, "{begin}");
    assert_eq!(f(begin, &["deleted"]), 0.0);
    assert_eq!(f(end, &["allocated"]), 50.0, "{end}");
    assert_eq!(f(end, &["failed"]), 0.0, "{end}");
    // Every relay delivered the bench peer's datagram over the channel.
    assert_eq!(f(end, &["relay_checked"]), 50.0, "{end}");
    // About three refresh rounds in the second held, none lost.
    assert!(f(end, &["refreshes"]) >= 50.0, "{end}");
    assert_eq!(f(end, &["lost"]), 0.0, "{end}");
    assert!(f(end, &["permissions"]) >= 100.0, "{end}");
    assert!(f(end, &["channel_binds"]) >= 100.0, "{end}");
    // Deleted at the end: they were still there after the hold (a Refresh 0 for a
    // missing allocation is a 437).
    assert_eq!(f(end, &["deleted"]), 50.0, "{end}");
    assert_eq!(f(end, &["delete_failed"]), 0.0, "{end}");
    assert!(f(end, &["hold_s"]) >= 0.9, "{end}");
}

#[test]
fn hold_ends_on_sigterm_and_with_hold_secs() {
    let (_serial, _server, addr) = start("hold2", "41600-41699");
    let (child, stdout, line) = start_hold(&addr, &["--clients", "10", "--peer", "127.0.0.1:9"]);
    assert_eq!(line, "holding 10 allocations");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let (ok, rest) = finish_hold(child, stdout);
    assert!(ok, "{rest}");
    assert!(rest.contains("teardown            10 deleted"), "{rest}");

    let out = run(
        "hold",
        &addr,
        &["--clients", "10", "--hold-secs", "0.2", "--json"],
    );
    let (first, rest) = out.split_once('\n').unwrap();
    assert_eq!(first, "holding 10 allocations");
    let docs = json_stream(rest);
    assert_eq!(f(&docs[1], &["deleted"]), 10.0, "{out}");
}

#[test]
fn flood_from_spoofed_sources_is_answered() {
    let (_serial, _server, addr) = start("flood", "41700-41799");
    let out = bench(
        &[
            "flood",
            "--server",
            &addr,
            "--sources",
            "2000",
            "--rate",
            "20000",
            "--json",
        ],
        Duration::from_secs(20),
    );
    let v = json(&out);
    assert_eq!(f(&v, &["sent"]), 2000.0, "{out}");
    let answered = f(&v, &["answered"]);
    assert!(answered >= 1990.0, "{out}");
    // Binding and unauthenticated Allocate alternate: half 200, half 401.
    assert!(f(&v, &["binding_success"]) >= 990.0, "{out}");
    assert!(f(&v, &["unauthorized"]) >= 990.0, "{out}");
    assert_eq!(
        f(&v, &["binding_success"]) + f(&v, &["unauthorized"]),
        answered,
        "{out}"
    );
    // Each answer went to the source its request came from, and Binding saw it.
    assert_eq!(f(&v, &["wrong_destination"]), 0.0, "{out}");
    assert_eq!(f(&v, &["mapped_mismatch"]), 0.0, "{out}");
    assert_eq!(v["first_source"], "127.1.0.1");
    assert_eq!(v["last_source"], "127.1.7.222");

    // Refused off loopback.
    let out = bench_fails(&["flood", "--server", "192.0.2.1:3478", "--sources", "10"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only runs against a server on IPv4 loopback"),
        "{err}"
    );
}
