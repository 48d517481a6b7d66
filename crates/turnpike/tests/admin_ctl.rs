//! `turnpike ctl` against the real binary: every subcommand (table and `--json`), where
//! the URL and token come from, and its exit codes (1 when the API refuses, 2 when the
//! server cannot be reached).

mod common;

use std::net::UdpSocket;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ServerProcess, TempDir, turnpike_bin};
use serde_json::Value;
use turnpike_bench::TurnClient;
use turnpike_bench::client::{ClientError, Credentials};

const TOKEN: &str = "ctl-test-token";

fn config(ports: &str) -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"ctl.test\"\n\
         secrets = [\"ctl-secret\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"{ports}\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         token = \"{TOKEN}\"\n[log]\nlevel = \"info\"\n"
    )
}

fn rest(user: &str) -> Credentials {
    Credentials::Rest {
        secret: "ctl-secret".into(),
        user: user.into(),
    }
}

/// Runs `turnpike ctl ARGS` against `server` with `--url` and `--token`.
fn ctl(server: &ServerProcess, args: &[&str]) -> Output {
    let url = format!("http://{}", server.admin.unwrap());
    let mut all = vec!["ctl", "--url", &url, "--token", TOKEN];
    all.extend_from_slice(args);
    run(&all, &[])
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(turnpike_bin());
    c.args(args).env_remove("TURNPIKE_ADMIN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run turnpike ctl")
}

/// Stdout of a run that must succeed.
fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("--json prints JSON")
}

#[test]
fn every_subcommand_as_table_and_json() {
    // No RUST_LOG: the API may change the level.
    let server = ServerProcess::start_logging("ctl-all", &config("27880-27889"), "");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut alice = TurnClient::connect(server.udp[0], &rest("alice")).unwrap();
    let relayed = alice.allocate(None).unwrap();
    alice.create_permission(peer.local_addr().unwrap()).unwrap();
    let mut bob = TurnClient::connect(server.udp[0], &rest("bob")).unwrap();
    bob.allocate(None).unwrap();

    let table = ok(&ctl(&server, &["status"]));
    assert!(table.contains("allocations          2"), "{table}");
    assert_eq!(json(&ctl(&server, &["status", "--json"]))["allocations"], 2);

    let table = ok(&ctl(&server, &["sessions", "--user", "alice"]));
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains(":alice") && table.contains(&relayed.to_string()),
        "{table}"
    );
    assert!(
        table.contains("127.0.0.1 ") && table.contains("1 session(s)"),
        "{table}"
    );
    let list = json(&ctl(
        &server,
        &[
            "sessions",
            "--json",
            "--peer",
            "127.0.0.1",
            "--transport",
            "udp",
        ],
    ));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        json(&ctl(&server, &["--json", "sessions"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );

    assert_eq!(ok(&ctl(&server, &["kill", &id])), "ended 1 session(s)\n");
    assert!(matches!(
        alice.refresh(600),
        Err(ClientError::Rejected { code: 437, .. })
    ));
    assert_eq!(
        json(&ctl(&server, &["kill", "--user", "bob", "--json"]))["ended"],
        1
    );

    let mut carol = TurnClient::connect(server.udp[0], &rest("carol")).unwrap();
    carol.allocate(None).unwrap();
    let out = ok(&ctl(&server, &["revoke", "carol", "--for", "1h"]));
    assert_eq!(out, "revoked; ended 1 allocation(s)\n");
    let table = ok(&ctl(&server, &["revocations"]));
    assert!(
        table.contains("carol") && table.contains("1 revocation(s)"),
        "{table}"
    );
    let list = json(&ctl(&server, &["revocations", "--json"]));
    let until = list[0]["until"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(until.abs_diff(now + 3600) < 60, "{list}");
    assert_eq!(
        json(&ctl(
            &server,
            &["revoke", "dave", "--until", "4000000000", "--json"]
        ))["ended"],
        0
    );
    assert_eq!(
        ok(&ctl(&server, &["unrevoke", "carol"])),
        "unrevoked carol\n"
    );
    assert_eq!(
        json(&ctl(&server, &["unrevoke", "dave", "--json"]))["unrevoked"],
        "dave"
    );

    assert_eq!(
        ok(&ctl(&server, &["log-level", "debug"])),
        "log level: debug\n"
    );
    assert_eq!(
        json(&ctl(&server, &["log-level", "info", "--json"]))["level"],
        "info"
    );
    let out = ok(&ctl(&server, &["reload"]));
    assert!(out.starts_with("reloaded; applied: "), "{out}");
    assert!(json(&ctl(&server, &["reload", "--json"]))["applied"].is_array());

    // Drain last: with no allocation left the server stops by itself.
    let mut held = TurnClient::connect(server.udp[0], &rest("held")).unwrap();
    held.allocate(None).unwrap();
    let out = ok(&ctl(&server, &["drain", "--deadline", "10m"]));
    let secs: u64 = out
        .strip_prefix("draining: 1 allocation(s) left, deadline in ")
        .and_then(|rest| rest.strip_suffix(" s\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!((590..=600).contains(&secs), "{out}");
    let d = json(&ctl(&server, &["drain", "--json"]));
    assert_eq!(d["draining"], true, "{d}");
    let table = ok(&ctl(&server, &["status"]));
    assert!(
        table.contains("draining             yes, 1 allocation(s) left"),
        "{table}"
    );
    held.close().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut server = server;
    while server.is_running() {
        assert!(Instant::now() < deadline, "still running after the drain");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn url_and_token_come_from_the_config_or_the_environment() {
    let server = ServerProcess::start("ctl-config", &config("27890-27894"));
    let dir = TempDir::new("ctl-config-client");
    let token_file = dir.0.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let client_config = dir.0.join("client.toml");
    std::fs::write(
        &client_config,
        format!(
            "[admin]\nlisten = \"{}\"\ntoken_file = \"{}\"\n",
            server.admin.unwrap(),
            token_file.display()
        ),
    )
    .unwrap();
    let path = client_config.to_str().unwrap();
    let status = json(&run(&["-c", path, "ctl", "status", "--json"], &[]));
    assert_eq!(status["allocations"], 0);
    // The environment's token wins over the file's.
    let out = run(
        &["-c", path, "ctl", "status"],
        &[("TURNPIKE_ADMIN_TOKEN", "nope")],
    );
    assert_eq!(out.status.code(), Some(1));
    let url = format!("http://{}", server.admin.unwrap());
    let out = run(
        &["ctl", "--url", &url, "status", "--json"],
        &[("TURNPIKE_ADMIN_TOKEN", TOKEN)],
    );
    assert_eq!(json(&out)["workers"].as_u64().map(|w| w > 0), Some(true));
}

#[test]
fn exit_codes_tell_refusals_from_connection_problems() {
    let server = ServerProcess::start("ctl-codes", &config("27895-27899"));
    let url = format!("http://{}", server.admin.unwrap());
    let out = run(&["ctl", "--url", &url, "--token", "wrong", "status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("wrong admin token"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let out = ctl(&server, &["kill", "123456"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such session"));
    let out = ctl(&server, &["sessions", "--transport", "carrier-pigeon"]);
    assert_eq!(out.status.code(), Some(1));
    // Usage: kill needs an id or --user.
    assert_eq!(ctl(&server, &["kill"]).status.code(), Some(2));

    assert!(server.stop().success());
    let out = run(&["ctl", "--url", &url, "--token", TOKEN, "status"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach the admin API"), "{stderr}");
}
