//! RFC 6062 TCP relays against the real binary, driven by coturn's `turnutils_uclient -T`:
//! each client allocates a TCP relay over a TCP control connection, the clients Connect to
//! each other's relayed addresses, the server sends ConnectionAttempt to the other side,
//! both bind data connections with ConnectionBind, and the payload is echoed end to end.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::ServerProcess;

const SECRET: &str = "tcp-relay-secret";

fn rest_credentials() -> (String, String) {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    turnpike_proto::auth::rest::mint(SECRET.as_bytes(), "tcprelay", expiry)
}

/// Runs uclient with a hard time limit; returns its combined output.
fn uclient(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    // One log per call: the tests of this file run side by side.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_path =
        std::env::temp_dir().join(format!("uclient-T-{}-{call}.log", std::process::id()));
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("turnutils_uclient")
        .args(args)
        .stdout(out_file.try_clone().unwrap())
        .stderr(out_file)
        .spawn()
        .expect("turnutils_uclient is installed (Debian package coturn)");
    let code = common::wait_bounded(&mut child, limit);
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    (code, text)
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.contains(key))?;
    let rest = &line[line.find(key)? + key.len()..];
    rest.trim_start_matches([' ', '='])
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn uclient_tcp_relay_mode_round_trips_every_message() {
    let config = format!(
        "[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n[turn]\nrealm = \"tcp.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"28000-28499\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n[runtime]\nworkers = 4\n"
    );
    // Four workers, connections dealt round-robin: most ConnectionBinds reach another
    // worker than the one holding their peer connection, which hands them over. A wide
    // relay range: a relay connects from its own port, and a rerun within a minute that
    // drew the same two relay ports would find the 4-tuple still in TIME_WAIT (connect
    // fails with EADDRNOTAVAIL, the client gets 447).
    let server = ServerProcess::start("tcp-relay", &config);
    let addr = server.tcp[0];
    let (user, pass) = rest_credentials();
    let port = addr.port().to_string();
    let (code, out) = uclient(
        &[
            "-T",
            "-u",
            &user,
            "-w",
            &pass,
            "-p",
            &port,
            "-m",
            "4",
            "-n",
            "20",
            "-l",
            // uclient's default payload: its data connections sign the ConnectionBind
            // with the control connection's nonce, which must work (it failed with a
            // 438 while nonces were bound to the client's port; other lengths happened
            // to dodge it).
            "100",
            "127.0.0.1",
        ],
        Duration::from_secs(60),
    );
    let tail: String = out.lines().rev().take(25).collect::<Vec<_>>().join("\n");
    assert_eq!(code, Some(0), "uclient -T failed:\n{tail}");
    assert!(out.contains("connections are completed"), "{tail}");
    let sent = number_after(&out, "tot_send_msgs").unwrap_or(0);
    let received = number_after(&out, "tot_recv_msgs").unwrap_or(0);
    assert_eq!(sent, 80, "4 clients x 20 messages:\n{tail}");
    assert_eq!(received, sent, "every message came back:\n{tail}");
    assert_eq!(number_after(&out, "Total lost packets"), Some(0), "{tail}");
}

/// RFC 6062 data is the user's traffic like datagrams: a per-user byte budget stops it.
/// The same run as above with `[quotas] user_bytes_per_period = 3000` (of the ~16 kB it
/// would pipe): the server closes the data connections once the budget is spent, so
/// messages go unanswered; the log says why.
#[test]
fn a_spent_user_budget_closes_the_data_connections() {
    let config = format!(
        "[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n[turn]\nrealm = \"tcp.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"28500-28999\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n\
         [quotas]\nuser_bytes_per_period = 3000\n"
    );
    let server = ServerProcess::start_logging("tcp-relay-budget", &config, "turnpike_server=debug");
    let port = server.tcp[0].port().to_string();
    let (user, pass) = rest_credentials();
    let (_, out) = uclient(
        &[
            "-T",
            "-u",
            &user,
            "-w",
            &pass,
            "-p",
            &port,
            "-m",
            "4",
            "-n",
            "20",
            "-l",
            "100",
            "127.0.0.1",
        ],
        Duration::from_secs(30),
    );
    let tail: String = out.lines().rev().take(25).collect::<Vec<_>>().join("\n");
    assert!(out.contains("connections are completed"), "{tail}");
    let sent = number_after(&out, "tot_send_msgs").unwrap_or(0);
    let received = number_after(&out, "tot_recv_msgs").unwrap_or(0);
    assert!(sent > 0, "{tail}");
    // 3000 bytes pass at most 30 messages of 100 bytes through the relay, counting both
    // directions of the echo.
    assert!(
        received <= 30,
        "{received} of {sent} came back through a 3000-byte budget:\n{tail}"
    );
    server.wait_for_log(&["traffic budget is spent"], Duration::from_secs(5));
}
