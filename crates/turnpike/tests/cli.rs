//! The command line: configuration errors name the file, line and reason and exit with 2;
//! the embedded default is the shipped `turnserver.toml`.

mod common;

use std::process::Command;

use common::{TempDir, turnpike_bin};

#[test]
fn bad_config_is_refused_with_file_line_and_reason() {
    let dir = TempDir::new("badconfig");
    let cases = [
        (
            "[listen]\nudp = [\"127.0.0.1:0\"]\nmystery = 1\n",
            ":3:1: unknown field `mystery`",
        ),
        (
            "[tcp]\n\nidle_timeout_secs = \"soon\"\n",
            ":3:21: invalid type",
        ),
        (
            "[listen]\nudp = [\"not-an-address\"]\n",
            ":2:8: invalid socket address",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.0.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for sub in [&[][..], &["check-config"][..]] {
            let out = Command::new(turnpike_bin())
                .arg("--config")
                .arg(&path)
                .args(sub)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "exit code for {text:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let want = format!("{}{expected}", path.display());
            assert!(stderr.contains(&want), "{stderr:?} lacks {want:?}");
        }
    }
}

#[test]
fn shipped_config_is_the_embedded_default_and_is_valid() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../turnserver.toml");
    let out = Command::new(turnpike_bin())
        .arg("default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(shipped).unwrap()
    );
    let out = Command::new(turnpike_bin())
        .args(["--config", shipped, "check-config", "--skip-host-checks"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_describes_the_commands() {
    let out = Command::new(turnpike_bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--config",
        "check-config",
        "default-config",
        "run",
        "credentials",
        "explain-auth",
    ] {
        assert!(text.contains(word), "--help lacks {word}");
    }
}

#[test]
fn credentials_are_rest_credentials_openssl_agrees_with() {
    let out = Command::new(turnpike_bin())
        .env_remove("TURNPIKE_SECRET")
        .args([
            "credentials",
            "--secret",
            "s3cret",
            "--user",
            "alice",
            "--ttl",
            "2h",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let username = text
        .lines()
        .find_map(|l| l.strip_prefix("username: "))
        .unwrap();
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 7190..=now + 7210).contains(&expiry), "ttl 2h");
    // The password is base64(HMAC-SHA1(secret, username)), as openssl computes it.
    let expected = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf %s '{username}' | openssl dgst -binary -sha1 -hmac s3cret | base64"
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(expected.stdout).unwrap().trim(), password);

    let json = Command::new(turnpike_bin())
        .args([
            "credentials",
            "--secret",
            "s",
            "--user",
            "bob",
            "--json",
            "--host",
            "turn.example",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let turn = &v["iceServers"][1];
    assert_eq!(turn["urls"][0], "turn:turn.example:3478?transport=udp");
    assert!(turn["username"].as_str().unwrap().ends_with(":bob"));
    assert!(!turn["credential"].as_str().unwrap().is_empty());
}

/// `--help` tells how to run it, what the exit codes mean and which signals it takes.
#[test]
fn help_has_examples_exit_codes_and_signals() {
    let out = Command::new(turnpike_bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "Examples:",
        "check-config",
        "Exit codes:",
        "  2  bad configuration",
        "Signals",
        "SIGHUP",
        "SIGUSR2",
    ] {
        assert!(text.contains(word), "--help lacks {word:?}:\n{text}");
    }
}

/// Every problem of a file is reported, each once, with its line; a dangerous switch is
/// accepted with a warning; `--config` where it is not read is refused, not ignored.
#[test]
fn check_config_reports_every_problem_once_and_warns() {
    let dir = TempDir::new("checkall");
    let path = dir.0.join("all.toml");
    std::fs::write(
        &path,
        "[listen]\nudp = [\"0.0.0.0:99999\"]\n[peers]\nallow = [\"10.0.0.1/8\"]\n\
         [alternates]\nudp = [\"turn.example.com:3478\"]\n[tcp]\nidle_timeout_secs = 0\n",
    )
    .unwrap();
    let out = Command::new(turnpike_bin())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for (line, needle) in [
        (2, "\"0.0.0.0:99999\": the port must be"),
        (4, "write the network 10.0.0.0/8"),
        (6, "\"turn.example.com:3478\": a host name"),
    ] {
        let want = format!("{file}:{line}:");
        let hits = stderr
            .lines()
            .filter(|l| l.contains(&want) && l.contains(needle))
            .count();
        assert_eq!(hits, 1, "{needle:?} at line {line}, once:\n{stderr}");
    }
    // Serde stopped at the types; once they are right, the value rules are reported.
    std::fs::write(
        &path,
        "[alternates]\nudp = [\"0.0.0.0:3478\"]\n[tcp]\nidle_timeout_secs = 0\n",
    )
    .unwrap();
    let out = Command::new(turnpike_bin())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains(&format!("{file}:2:")), "{stderr}");
    assert!(stderr.contains(&format!("{file}:4:")), "{stderr}");

    std::fs::write(&path, "[peers]\ndangerous_allow_loopback_peers = true\n").unwrap();
    let out = Command::new(turnpike_bin())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: [peers] dangerous_allow_loopback_peers is on"),
        "{stderr}"
    );

    let out = Command::new(turnpike_bin())
        .arg("--config")
        .arg(&path)
        .arg("default-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not read a configuration file"));
}

/// Start-up says which ports to open (listeners and the relay range) and the URLs to put
/// in `iceServers`, and warns about a dangerous switch in the log.
#[test]
fn start_up_prints_the_ports_to_open_and_the_urls() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = TempDir::new("banner");
    let path = dir.0.join("turnserver.toml");
    std::fs::write(
        &path,
        "[listen]\nudp = [\"127.0.0.1:30401\"]\ntcp = [\"127.0.0.1:30401\"]\n\
         public_name = \"turn.example.net\"\n[relay]\nips = [\"127.0.0.1\"]\nports = \"30410-30419\"\n\
         [turn]\nsecrets = [\"s\"]\n[peers]\ndangerous_allow_loopback_peers = true\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = Command::new(turnpike_bin())
        .env("RUST_LOG", "warn")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in stdout.lines().map_while(Result::ok) {
        if line == "ready" {
            break;
        }
        lines.push(line);
        assert!(lines.len() < 100, "no ready: {lines:?}");
    }
    // Checking the file beside the running server (before a reload) is fine: its own
    // listeners are not "busy".
    let check = Command::new(turnpike_bin())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    let check_err = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{check_err}");
    assert!(
        check_err.contains("held by a running turnpike"),
        "{check_err}"
    );
    // Stop it by its PID and read what it logged.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "firewall: open 30401/udp 30401/tcp 30410-30419/udp 30410-30419/tcp",
        "url stun:turn.example.net:30401",
        "url turn:turn.example.net:30401?transport=udp",
        "url turn:turn.example.net:30401?transport=tcp",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want:?} not in {lines:#?}"
        );
    }
    assert_eq!(
        stderr
            .matches("dangerous_allow_loopback_peers is on")
            .count(),
        1,
        "{stderr}"
    );
}
