//! `turnpike credentials` against the real binary: the secret comes from --secret, then
//! --secret-file, then TURNPIKE_SECRET, then the configuration; an empty or missing secret
//! is refused with exit 2; the URLs follow the configuration's listeners and `[tls]`; and a
//! minted credential, used on the URLs printed, authenticates against a running server.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};

use common::{ServerProcess, TempDir, turnpike_bin};
use turnpike_bench::TurnClient;
use turnpike_bench::client::{Credentials, Transport};
use turnpike_proto::auth::rest::rest_password;

/// Runs `turnpike credentials ARGS` with TURNPIKE_SECRET set to `env` (or unset).
fn credentials(args: &[&str], env: Option<&str>) -> Output {
    let mut cmd = Command::new(turnpike_bin());
    cmd.arg("credentials")
        .args(args)
        .env_remove("TURNPIKE_SECRET");
    if let Some(value) = env {
        cmd.env("TURNPIKE_SECRET", value);
    }
    cmd.output().unwrap()
}

/// The username and password of the two-line output.
fn minted(out: &Output) -> (String, String) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} in {text:?}"))
            .to_owned()
    };
    (field("username: "), field("password: "))
}

/// Which of `secrets` signed the credential.
fn signer<'a>(secrets: &[&'a str], (username, password): &(String, String)) -> Option<&'a str> {
    secrets
        .iter()
        .copied()
        .find(|s| rest_password(s.as_bytes(), username) == *password)
}

#[test]
fn the_secret_comes_from_the_flag_the_file_the_environment_then_the_configuration() {
    let dir = TempDir::new("creds-sources");
    let config = dir.0.join("turnserver.toml");
    std::fs::write(
        &config,
        "[turn]\nsecrets = [\"from-config\", \"second-in-config\"]\n",
    )
    .unwrap();
    let file = dir.0.join("secret");
    std::fs::write(&file, "  from-file \nsecond line\n").unwrap();
    let (config, file) = (config.to_str().unwrap(), file.to_str().unwrap());
    let all = [
        "from-flag",
        "from-file",
        "from-env",
        "from-config",
        "second-in-config",
    ];
    let base = ["-c", config, "--user", "u"];
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (
            &["--secret", "from-flag", "--secret-file", file],
            Some("from-env"),
            "from-flag",
        ),
        (&["--secret-file", file], Some("from-env"), "from-file"),
        (&[], Some("from-env"), "from-env"),
        (&[], None, "from-config"),
    ];
    for (args, env, want) in cases {
        let out = credentials(&[&base[..], args].concat(), env);
        assert_eq!(signer(&all, &minted(&out)), Some(want), "{args:?} {env:?}");
    }
}

#[test]
fn an_empty_or_missing_secret_is_refused() {
    let dir = TempDir::new("creds-empty");
    let empty_file = dir.0.join("empty");
    std::fs::write(&empty_file, "   \nsecond line is not read\n").unwrap();
    let no_secrets = dir.0.join("none.toml");
    std::fs::write(&no_secrets, "[turn]\nsecrets = []\n").unwrap();
    let with_secret = dir.0.join("one.toml");
    std::fs::write(&with_secret, "[turn]\nsecrets = [\"configured\"]\n").unwrap();
    let (empty_file, no_secrets, with_secret) = (
        empty_file.to_str().unwrap(),
        no_secrets.to_str().unwrap(),
        with_secret.to_str().unwrap(),
    );
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (
            &["-c", with_secret, "--secret", ""],
            None,
            "secret from --secret is empty",
        ),
        (
            &["-c", with_secret, "--secret-file", empty_file],
            None,
            "is empty",
        ),
        (
            &["-c", with_secret],
            Some(""),
            "secret from TURNPIKE_SECRET is empty",
        ),
        (&["-c", no_secrets], None, "no secret"),
    ];
    for (args, env, needle) in cases {
        let out = credentials(&[args, &["--user", "u"][..]].concat(), env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing minted");
    }
    // The refusal says where it looked.
    let out = credentials(&["-c", no_secrets, "--user", "u"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for place in [
        "--secret",
        "--secret-file",
        "TURNPIKE_SECRET",
        "[turn] secrets",
    ] {
        assert!(stderr.contains(place), "{stderr} lacks {place}");
    }
}

/// `{"iceServers": ...}` for `config` text.
fn ice_servers(dir: &TempDir, name: &str, config: &str, extra: &[&str]) -> serde_json::Value {
    let path = dir.0.join(name);
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    let out = credentials(
        &[
            &["-c", path, "--secret", "s", "--user", "u", "--json"],
            extra,
        ]
        .concat(),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn urls(entry: &serde_json::Value) -> Vec<&str> {
    entry["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect()
}

#[test]
fn the_urls_follow_the_listeners_and_tls() {
    let dir = TempDir::new("creds-urls");
    // The binary only checks that the TLS files exist; it does not read them here.
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, "not read").unwrap();
    std::fs::write(&key, "not read").unwrap();
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );

    let full = ice_servers(
        &dir,
        "full.toml",
        &format!(
            "[listen]\nudp = [\"0.0.0.0:3478\", \"[::]:3478\"]\n\
             tcp = [\"0.0.0.0:3478\", \"0.0.0.0:443\"]\npublic_name = \"turn.example.net\"\n{tls}"
        ),
        &[],
    );
    let servers = full["iceServers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(urls(&servers[0]), ["stun:turn.example.net:3478"]);
    assert!(
        servers[0].get("username").is_none(),
        "STUN has no credential"
    );
    assert_eq!(
        urls(&servers[1]),
        [
            "turn:turn.example.net:3478?transport=udp",
            "turn:turn.example.net:3478?transport=tcp",
            "turn:turn.example.net:443?transport=tcp",
            "turns:turn.example.net:3478?transport=tcp",
            "turns:turn.example.net:443?transport=tcp",
        ]
    );
    let username = servers[1]["username"].as_str().unwrap();
    assert!(username.ends_with(":u"));
    assert_eq!(
        servers[1]["credential"].as_str().unwrap(),
        rest_password(b"s", username)
    );

    // TCP only, no [tls]: no stun:, no transport=udp, no turns:. The host given by hand
    // wins over the listener's address.
    let tcp_only = ice_servers(
        &dir,
        "tcp.toml",
        "[listen]\nudp = []\ntcp = [\"192.0.2.10:5000\"]\n",
        &[],
    );
    let servers = tcp_only["iceServers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(urls(&servers[0]), ["turn:192.0.2.10:5000?transport=tcp"]);
    let by_hand = ice_servers(
        &dir,
        "tcp.toml",
        "[listen]\nudp = []\ntcp = [\"192.0.2.10:5000\"]\n",
        &["--host", "2001:db8::5"],
    );
    assert_eq!(
        urls(&by_hand["iceServers"][0]),
        ["turn:[2001:db8::5]:5000?transport=tcp"]
    );

    // The human output lists the same URLs.
    let path = dir.0.join("full.toml");
    let out = credentials(
        &["-c", path.to_str().unwrap(), "--secret", "s", "--user", "u"],
        None,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("url: "))
        .collect();
    assert_eq!(listed.len(), 6, "{text}");
    assert!(listed.contains(&"turns:turn.example.net:443?transport=tcp"));
}

/// The address in a `turn:HOST:PORT?transport=...` URL.
fn url_addr(url: &str) -> SocketAddr {
    let rest = url.split_once(':').unwrap().1;
    rest.split('?').next().unwrap().parse().unwrap()
}

#[test]
fn a_minted_credential_authenticates_on_the_urls_it_comes_with() {
    let server = ServerProcess::start(
        "creds-live",
        "[listen]\nudp = [\"127.0.0.1:27701\"]\ntcp = [\"127.0.0.1:27701\"]\n\
         [turn]\nrealm = \"creds.test\"\nsecrets = [\"live-secret\"]\n\
         [relay]\nips = [\"127.0.0.1\"]\nports = \"27720-27739\"\n",
    );
    // The secret comes from the server's own file.
    let out = credentials(
        &[
            "-c",
            server.config_path.to_str().unwrap(),
            "--user",
            "carol",
            "--ttl",
            "5m",
            "--json",
        ],
        None,
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let turn = &v["iceServers"][1];
    let user = turn["username"].as_str().unwrap().to_owned();
    let password = turn["credential"].as_str().unwrap().to_owned();
    let good = Credentials::Static {
        user: user.clone(),
        password: password.clone(),
    };
    let bad = Credentials::Static {
        user,
        password: format!("x{password}"),
    };
    assert_eq!(
        urls(turn),
        [
            "turn:127.0.0.1:27701?transport=udp",
            "turn:127.0.0.1:27701?transport=tcp"
        ]
    );
    for url in urls(turn) {
        let transport = if url.ends_with("udp") {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let addr = url_addr(url);
        let mut client = TurnClient::connect_over(addr, &good, &transport).unwrap();
        client
            .allocate(None)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        client.close().unwrap();
        let mut client = TurnClient::connect_over(addr, &bad, &transport).unwrap();
        assert!(client.allocate(None).is_err(), "{url}: a wrong password");
    }
    assert!(server.stop().success());
}
