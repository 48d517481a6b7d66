//! The admin API against the real binary: the bearer token, sessions with their
//! figures, filters and ending, revocations, drain and readiness, log level and reload
//! through the API; and `crates/admin/openapi.yaml` checked against the running server
//! with schemathesis.

mod common;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ServerProcess;
use serde_json::{Value, json};
use turnpike_bench::TurnClient;
use turnpike_bench::client::{ClientError, Credentials};
use turnpike_stun::ChannelNumber;

const SECRET: &str = "api-secret";
const TOKEN: &str = "api-test-token";

/// A server on loopback with REST secret `secret`, relay ports `ports`, the admin
/// token [`TOKEN`] and `extra` sections.
fn config(secret: &str, ports: &str, extra: &str) -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\n[turn]\n\
         realm = \"api.test\"\nsecrets = [\"{secret}\"]\n[relay]\nips = [\"127.0.0.1\"]\n\
         ports = \"{ports}\"\n[peers]\ndangerous_allow_loopback_peers = true\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{extra}"
    )
}

fn rest(user: &str) -> Credentials {
    rest_with(SECRET, user)
}

fn rest_with(secret: &str, user: &str) -> Credentials {
    Credentials::Rest {
        secret: secret.into(),
        user: user.into(),
    }
}

/// The error code of a refused request.
fn code(result: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(ClientError::Rejected { code, .. }) => code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// An HTTP answer: status, `WWW-Authenticate`, body.
struct Answer {
    status: u16,
    challenge: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Calls the admin API at `admin` with `token` (none: no Authorization header).
fn call(
    admin: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(b) => {
            request = request.header("Content-Type", "application/json");
            b.to_string()
        }
        None => String::new(),
    };
    let mut response = agent
        .run(request.body(body).unwrap())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Answer {
        status: response.status().as_u16(),
        challenge: response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// Calls with [`TOKEN`].
fn api(server: &ServerProcess, method: &str, path: &str, body: Option<Value>) -> Answer {
    call(server.admin.unwrap(), Some(TOKEN), method, path, body)
}

#[test]
fn requests_without_the_right_token_get_401() {
    // No [admin] token: the server generates one and prints it.
    let server = ServerProcess::start(
        "api-token",
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nsecrets = [\"x\"]\n",
    );
    let admin = server.admin.expect("the admin API runs");
    let token = server.admin_token.clone().expect("a generated token");
    for path in [
        "/v1/status",
        "/v1/sessions",
        "/v1/revocations",
        "/v1/nowhere",
    ] {
        for given in [None, Some("wrong"), Some("")] {
            let a = call(admin, given, "GET", path, None);
            assert_eq!(a.status, 401, "{path} with {given:?}");
            assert!(
                a.challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{:?}",
                a.challenge
            );
            assert!(a.json()["error"].is_string(), "{}", a.body);
        }
    }
    let a = call(admin, Some(&token), "DELETE", "/v1/sessions?all=true", None);
    assert_eq!(a.status, 200, "{}", a.body);
    let a = call(admin, Some(&token), "GET", "/v1/status", None);
    assert_eq!(a.status, 200, "{}", a.body);
    let status = a.json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["workers"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["draining"], false);
    let a = call(admin, Some(&token), "GET", "/v1/nowhere", None);
    assert_eq!(a.status, 404);
    assert!(a.json()["error"].is_string());
    let a = call(admin, None, "GET", "/elsewhere", None);
    assert_eq!(a.status, 404);
    assert!(a.json()["error"].is_string());
    // Liveness and readiness need no token.
    assert_eq!(call(admin, None, "GET", "/live", None).status, 200);
    let ready = call(admin, None, "GET", "/ready", None);
    assert_eq!((ready.status, ready.body.trim()), (200, "ready"));
}

/// The sessions of `query`, as JSON.
fn sessions(server: &ServerProcess, query: &str) -> Vec<Value> {
    let a = api(server, "GET", &format!("/v1/sessions{query}"), None);
    assert_eq!(a.status, 200, "{query}: {}", a.body);
    a.json().as_array().unwrap().clone()
}

#[test]
fn sessions_show_their_figures_filter_and_end_by_operator() {
    let server =
        ServerProcess::start_logging("api-sessions", &config(SECRET, "27800-27819", ""), "info");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut alice = TurnClient::connect(server.udp[0], &rest("alice")).unwrap();
    let relayed = alice.allocate(None).unwrap();
    let channel = ChannelNumber::new(0x4001).unwrap();
    alice.channel_bind(channel, peer_addr).unwrap();
    let mut buf = [0u8; 64];
    let mut send = |n: usize| {
        for _ in 0..n {
            alice.send_channel_data(channel, b"0123456789").unwrap();
            peer.recv_from(&mut buf).expect("relayed to the peer");
        }
    };
    send(3);

    let all = sessions(&server, "");
    assert_eq!(all.len(), 1, "{all:?}");
    let s = &all[0];
    assert!(s["username"].as_str().unwrap().ends_with(":alice"), "{s}");
    assert_eq!(s["relayed"], json!([relayed.to_string()]));
    assert_eq!(s["transport"], "udp");
    assert_eq!(s["server"], server.udp[0].to_string());
    assert_eq!(s["permissions"], json!(["127.0.0.1"]));
    assert_eq!(
        s["channels"],
        json!([{"number": 0x4001, "peer": peer_addr.to_string()}])
    );
    assert_eq!(s["to_peer"], json!({"packets": 3, "bytes": 30}));
    assert_eq!(s["tcp_relay"], false);
    assert!(s["expires_in_secs"].as_u64().unwrap() > 500, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    send(2);
    let again = api(&server, "GET", &format!("/v1/sessions/{id}"), None).json();
    assert_eq!(
        again["to_peer"],
        json!({"packets": 5, "bytes": 50}),
        "the counts grow"
    );
    let client = again["client"].as_str().unwrap().to_owned();

    let mut bob = TurnClient::connect(server.udp[0], &rest("bob")).unwrap();
    bob.allocate(None).unwrap();
    for (query, want) in [
        ("?user=alice", 1),
        ("?user=bob", 1),
        ("?user=carol", 0),
        ("?peer=127.0.0.1", 1),
        ("?peer=192.0.2.1", 0),
        ("?transport=udp", 2),
        ("?transport=tcp", 0),
        ("?user=alice&transport=udp&peer=127.0.0.1", 1),
    ] {
        assert_eq!(sessions(&server, query).len(), want, "{query}");
    }
    for bad in ["?transport=sctp", "?peer=not-an-ip", "?user="] {
        let a = api(&server, "GET", &format!("/v1/sessions{bad}"), None);
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert!(a.json()["error"].as_str().unwrap().len() > 5);
    }
    let status = api(&server, "GET", "/v1/status", None).json();
    assert_eq!(status["allocations"], 2, "{status}");
    assert_eq!(status["totals"]["channels"], 1, "{status}");

    // End alice's by id: gone, her Refresh gets 437, the accounting line says why.
    let a = api(&server, "DELETE", &format!("/v1/sessions/{id}"), None);
    assert_eq!((a.status, a.json()), (200, json!({"ended": 1})));
    assert_eq!(
        api(&server, "GET", &format!("/v1/sessions/{id}"), None).status,
        404
    );
    assert_eq!(
        api(&server, "DELETE", &format!("/v1/sessions/{id}"), None).status,
        404
    );
    assert_eq!(api(&server, "GET", "/v1/sessions/abc", None).status, 400);
    assert_eq!(code(alice.refresh(600)), 437);
    let line = server.wait_for_log(&["allocation ended", &client], Duration::from_secs(5));
    assert!(line.contains("ended by operator"), "{line}");
    server.wait_for_log(&["admin API: session ended"], Duration::from_secs(5));

    // Deleting without a filter is refused; by user it ends that user's.
    let a = api(&server, "DELETE", "/v1/sessions", None);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        api(&server, "DELETE", "/v1/sessions?all=maybe", None).status,
        400
    );
    let a = api(&server, "DELETE", "/v1/sessions?user=bob", None);
    assert_eq!((a.status, a.json()), (200, json!({"ended": 1})));
    assert_eq!(code(bob.refresh(600)), 437);
    assert!(sessions(&server, "").is_empty());
    server.wait_for_log(
        &["admin API: sessions ended", "bob"],
        Duration::from_secs(5),
    );

    // RUST_LOG decides this server's level: 409.
    let a = api(
        &server,
        "PUT",
        "/v1/log-level",
        Some(json!({"level": "debug"})),
    );
    assert_eq!(a.status, 409, "{}", a.body);
}

#[test]
fn a_revoked_user_is_ended_and_refused_until_unrevoked() {
    let server =
        ServerProcess::start_logging("api-revoke", &config(SECRET, "27820-27839", ""), "info");
    let mut alice = TurnClient::connect(server.udp[0], &rest("alice")).unwrap();
    alice.allocate(None).unwrap();
    let mut bob = TurnClient::connect(server.udp[0], &rest("bob")).unwrap();
    bob.allocate(None).unwrap();

    let a = api(
        &server,
        "POST",
        "/v1/revocations",
        Some(json!({"name": "alice"})),
    );
    assert_eq!(
        (a.status, a.json()),
        (200, json!({"ended": 1})),
        "{}",
        a.body
    );
    server.wait_for_log(&["admin API: revoked", "alice"], Duration::from_secs(5));
    server.wait_for_log(
        &["allocation ended", ":alice", "revoked"],
        Duration::from_secs(5),
    );
    // Revoked: refused before the (ended) allocation is even looked up.
    assert_eq!(code(alice.refresh(600)), 401);
    let fresh = TurnClient::connect(server.udp[0], &rest("alice"))
        .unwrap()
        .allocate(None);
    assert_eq!(code(fresh), 401, "a good password is refused while revoked");
    bob.refresh(600).expect("bob is not revoked");
    let list = api(&server, "GET", "/v1/revocations", None).json();
    assert_eq!(list, json!([{"name": "alice", "until": null}]));

    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "until": -1}),
        json!({"name": "x", "extra": 1}),
    ] {
        let a = api(&server, "POST", "/v1/revocations", Some(bad.clone()));
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }

    let a = api(&server, "DELETE", "/v1/revocations/alice", None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        api(&server, "DELETE", "/v1/revocations/alice", None).status,
        404
    );
    assert_eq!(
        api(&server, "GET", "/v1/revocations", None).json(),
        json!([])
    );
    TurnClient::connect(server.udp[0], &rest("alice"))
        .unwrap()
        .allocate(None)
        .expect("allowed again after unrevoke");
}

#[test]
fn drain_flips_ready_and_sends_new_allocations_away() {
    let mut server =
        ServerProcess::start_logging("api-drain", &config(SECRET, "27840-27859", ""), "info");
    let admin = server.admin.unwrap();
    let mut held = TurnClient::connect(server.udp[0], &rest("held")).unwrap();
    held.allocate(None).unwrap();
    assert_eq!(
        api(&server, "GET", "/v1/drain", None).json()["draining"],
        false
    );
    assert_eq!(
        api(
            &server,
            "POST",
            "/v1/drain",
            Some(json!({"deadline_secs": 99999999}))
        )
        .status,
        400
    );

    let a = api(
        &server,
        "POST",
        "/v1/drain",
        Some(json!({"deadline_secs": 60})),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let d = a.json();
    assert_eq!(
        (d["draining"].clone(), d["allocations"].clone()),
        (json!(true), json!(1))
    );
    assert!(d["deadline_in_secs"].as_u64().unwrap() >= 58, "{d}");
    let ready = call(admin, None, "GET", "/ready", None);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(
        api(&server, "GET", "/v1/status", None).json()["draining"],
        true
    );

    // No alternates: 508. The held allocation goes on.
    let refused = TurnClient::connect(server.udp[0], &rest("late"))
        .unwrap()
        .allocate(None);
    assert_eq!(code(refused), 508);
    held.refresh(600).expect("existing allocations go on");

    // Alternates set by a reload through the API: 300 to the sibling.
    let sibling = "[alternates]\nudp = [\"127.0.0.1:3479\"]\n";
    std::fs::write(&server.config_path, config(SECRET, "27840-27859", sibling)).unwrap();
    let a = api(&server, "POST", "/v1/reload", None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.json()["applied"]
            .as_array()
            .unwrap()
            .contains(&json!("alternates")),
        "{}",
        a.body
    );
    let redirected = TurnClient::connect(server.udp[0], &rest("late"))
        .unwrap()
        .allocate(None);
    assert_eq!(code(redirected), 300);

    // The last allocation ends: the process stops by itself.
    assert_eq!(
        api(&server, "DELETE", "/v1/sessions?all=true", None).status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.is_running() {
        assert!(Instant::now() < deadline, "still running after the drain");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.wait_for_log(&["drained"], Duration::from_secs(1));
}

#[test]
fn log_level_and_reload_through_the_api() {
    // No RUST_LOG: the file's level (warn) decides and the API may change it.
    let extra = "[log]\nlevel = \"warn\"\n";
    let server = ServerProcess::start_logging("api-level", &config("s1", "27860-27869", extra), "");
    let tcp = server.tcp[0];
    let closed = "closed before the first byte";
    drop(TcpStream::connect(tcp).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.count_logs(closed), 0, "no debug lines at warn");

    let a = api(
        &server,
        "PUT",
        "/v1/log-level",
        Some(json!({"level": "loud"})),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(api(&server, "PUT", "/v1/log-level", None).status, 400);
    let a = api(
        &server,
        "PUT",
        "/v1/log-level",
        Some(json!({"level": "debug"})),
    );
    assert_eq!(
        (a.status, a.json()),
        (200, json!({"level": "debug"})),
        "{}",
        a.body
    );
    drop(TcpStream::connect(tcp).unwrap());
    server.wait_for_log(&[closed], Duration::from_secs(5));

    // A new secret through the API.
    TurnClient::connect(server.udp[0], &rest_with("s1", "u"))
        .unwrap()
        .allocate(None)
        .unwrap();
    std::fs::write(&server.config_path, config("s2", "27860-27869", extra)).unwrap();
    let a = api(&server, "POST", "/v1/reload", None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.json()["applied"]
            .as_array()
            .unwrap()
            .contains(&json!("turn")),
        "{}",
        a.body
    );
    let old = TurnClient::connect(server.udp[0], &rest_with("s1", "v"))
        .unwrap()
        .allocate(None);
    assert_eq!(code(old), 401);
    TurnClient::connect(server.udp[0], &rest_with("s2", "w"))
        .unwrap()
        .allocate(None)
        .expect("the new secret applies");

    // A broken file: 422 naming file and line; the configuration in force stays.
    std::fs::write(
        &server.config_path,
        "[listen]\nudp = [\"127.0.0.1:0\"]\n[turn\n",
    )
    .unwrap();
    let a = api(&server, "POST", "/v1/reload", None);
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("turnserver.toml:3"),
        "{}",
        a.body
    );
    TurnClient::connect(server.udp[0], &rest_with("s2", "x"))
        .unwrap()
        .allocate(None)
        .expect("still the secret in force");
}

/// The schemathesis command: its script, else the module through python3.
fn schemathesis() -> Command {
    if Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Command::new("schemathesis");
    }
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; schemathesis()",
    ]);
    c
}

#[test]
fn openapi_file_matches_the_running_server() {
    let server = ServerProcess::start("api-openapi", &config(SECRET, "27870-27879", ""));
    // A live session with a channel, so the session schemas meet real data.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client = TurnClient::connect(server.udp[0], &rest("schema")).unwrap();
    client.allocate(None).unwrap();
    client
        .channel_bind(
            ChannelNumber::new(0x4000).unwrap(),
            peer.local_addr().unwrap(),
        )
        .unwrap();
    let admin_crate = concat!(env!("CARGO_MANIFEST_DIR"), "/../admin");
    // POST /v1/drain is left out: a drain stops the server once its allocations end (the
    // drain test above covers it).
    // Its cache directory goes to a scratch directory, not the source tree.
    let scratch = common::TempDir::new("api-schemathesis");
    let output = schemathesis()
        .current_dir(&scratch.0)
        .arg("--config-file")
        .arg(format!("{admin_crate}/schemathesis.toml"))
        .arg("run")
        .arg(format!("{admin_crate}/openapi.yaml"))
        .args(["--url", &format!("http://{}", server.admin.unwrap())])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "20", "--checks", "all"])
        .args(["--exclude-operation-id", "drain"])
        .args(["--workers", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs (test.sh installs it: pip install schemathesis==4.32.5)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "schemathesis reported failures:\n{stdout}"
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
