//! RFC 6062 TCP relays against the real binary, driven by coturn's `turnutils_uclient -T`:
//! each client allocates a TCP relay over a TCP control connection, the clients Connect to
//! each other's relayed addresses, the server sends ConnectionAttempt to the other side,
//! both bind data connections with ConnectionBind, and the payload is echoed end to end.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    let out_path = std::env::temp_dir().join(format!("uclient-T-{}.log", std::process::id()));
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("turnutils_uclient")
        .args(args)
        .stdout(out_file.try_clone().unwrap())
        .stderr(out_file)
        .spawn()
        .expect("turnutils_uclient is installed (Debian package coturn)");
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
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
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"28000-28999\"\n\
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
