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
        .args(["--config", shipped, "check-config"])
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
