//! `turnpike explain-auth` against the real binary, and against the real server: for each
//! kind of credential (REST with the first or second secret, either field order, expired,
//! wrong secret, not a REST username, static user with the right or a wrong password) the
//! command's verdict (exit 0 or 1) and its reason line are checked, and so is what a
//! running server on the same file does with the same credential.

mod common;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{ServerProcess, turnpike_bin};
use turnpike_bench::TurnClient;
use turnpike_bench::client::Credentials;
use turnpike_proto::auth::rest::rest_password;

const CONFIG: &str = "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n\
     [turn]\nrealm = \"explain.test\"\nsecrets = [\"first-secret\", \"second-secret\"]\n\
     users = [{ name = \"alice\", password = \"wonderland\" }]\n\
     [relay]\nips = [\"127.0.0.1\"]\nports = \"27740-27759\"\n";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A REST username and its password under `secret`.
fn rest(username: String, secret: &str) -> (String, String) {
    let password = rest_password(secret.as_bytes(), &username);
    (username, password)
}

#[test]
fn explain_auth_says_what_the_server_does_and_why() {
    let server = ServerProcess::start("explain", CONFIG);
    let config = server.config_path.to_str().unwrap();
    let (soon, past) = (now() + 600, now() - 60);
    let cases = [
        (
            rest(format!("{soon}:dave"), "first-secret"),
            0,
            "ok   secret: the password is base64(HMAC-SHA1(secret, username)) for [turn] secrets[0]",
        ),
        (
            rest(format!("{soon}:erin"), "second-secret"),
            0,
            "for [turn] secrets[1]",
        ),
        (
            rest(format!("frank:{soon}"), "first-secret"),
            0,
            "ok   REST form: \"<user>:<expiry>\": user \"frank\"",
        ),
        (
            rest(format!("{past}:gina"), "first-secret"),
            1,
            "FAIL expiry: expired 6",
        ),
        (
            rest(format!("{soon}:hank"), "not-our-secret"),
            1,
            "FAIL secret: the password is not base64(HMAC-SHA1(secret, username)) for any of the 2",
        ),
        (
            ("ivan".to_owned(), "whatever".to_owned()),
            1,
            "expected \"<expiry>:<user>\"",
        ),
        (
            ("alice".to_owned(), "wonderland".to_owned()),
            0,
            "ok   static user: \"alice\" is [turn] users[0] and the password is its password",
        ),
        (
            ("alice".to_owned(), "wonder".to_owned()),
            1,
            "FAIL static user: \"alice\" is [turn] users[0], but the password is not its password",
        ),
    ];
    for ((username, password), code, needle) in cases {
        let out = Command::new(turnpike_bin())
            .args(["explain-auth", "-c", config, "--username", &username])
            .args(["--password", &password])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(code), "{username}: {text}");
        assert!(text.contains(needle), "{username}: {text} lacks {needle:?}");
        let verdict = if code == 0 { "accepted" } else { "rejected" };
        assert_eq!(text.lines().last(), Some(verdict), "{text}");
        assert!(
            !text.contains("first-secret") && !text.contains("second-secret"),
            "a secret is never printed: {text}"
        );
        // The server agrees.
        let credentials = Credentials::Static {
            user: username.clone(),
            password,
        };
        let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
        let allocated = client.allocate(None);
        assert_eq!(allocated.is_ok(), code == 0, "{username}: {allocated:?}");
        if allocated.is_ok() {
            client.close().unwrap();
        }
    }
    assert!(server.stop().success());
}

#[test]
fn a_forced_realm_is_noted_and_bad_usage_exits_2() {
    let dir = common::TempDir::new("explain-usage");
    let path = dir.0.join("turnserver.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let config = path.to_str().unwrap();
    let out = Command::new(turnpike_bin())
        .args(["explain-auth", "-c", config, "--username", "alice"])
        .args(["--password", "wonderland", "--realm", "other.realm"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("the server uses \"explain.test\"")
            && text.contains("WARN realm: --realm \"other.realm\" differs"),
        "{text}"
    );
    let out = Command::new(turnpike_bin())
        .args(["explain-auth", "-c", config, "--username", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no --password");
    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "[turn]\nsecrets = [\"\"]\n").unwrap();
    let out = Command::new(turnpike_bin())
        .args(["explain-auth", "-c", bad.to_str().unwrap()])
        .args(["--username", "a", "--password", "b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad configuration");
}
