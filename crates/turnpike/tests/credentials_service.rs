//! The credentials service on the real binary: API keys, the `iceServers` answer, TTL
//! rules, input checks, a minted credential allocating, and revocation ending the
//! allocation and refusing the credential.

mod common;
#[path = "support/http.rs"]
mod http;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::ServerProcess;
use turnpike_bench::TurnClient;
use turnpike_bench::client::{ClientError, Credentials};

const KEY: &str = "test-key-0123456789abcdef";

/// A server with the service on, relaying on `ports` (a range of its own per test).
fn start(ports: &str) -> (ServerProcess, SocketAddr) {
    let config = format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\npublic_name = \"turn.example.test\"\n\
         [turn]\nrealm = \"creds.test\"\nsecrets = [\"service-secret\", \"older-secret\"]\n\
         [relay]\nips = [\"127.0.0.1\"]\nports = \"{ports}\"\n\
         [credentials_service]\nenabled = true\nlisten = \"127.0.0.1:0\"\n\
         api_keys = [\"another-key-0123456789\", \"{KEY}\"]\n\
         default_ttl_secs = 3600\nmax_ttl_secs = 7200\n"
    );
    let server = ServerProcess::start("credentials-service", &config);
    let addr = server.credentials.expect("the service prints its address");
    (server, addr)
}

fn post(addr: SocketAddr, key: Option<&str>, body: &str) -> http::Response {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http::request(addr, "POST", "/v1/credentials", &headers, Some(body))
}

fn with_key(addr: SocketAddr, method: &str, path: &str) -> http::Response {
    let auth = format!("Bearer {KEY}");
    http::request(addr, method, path, &[("Authorization", &auth)], None)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_service_is_off_by_default() {
    let config = "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nsecrets = [\"x\"]\n\
                  [relay]\nips = [\"127.0.0.1\"]\nports = \"27980-27984\"\n";
    let server = ServerProcess::start("credentials-off", config);
    assert_eq!(server.credentials, None);
    server.stop();
}

#[test]
fn api_keys_are_required() {
    let (server, addr) = start("27960-27964");
    for key in [None, Some("wrong-key-0123456789abcdef"), Some("")] {
        let resp = post(addr, key, "{}");
        assert_eq!(resp.status, 401, "{key:?}: {resp:?}");
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
        assert!(resp.json()["error"].is_string());
    }
    let resp = http::request(addr, "GET", "/v1/credentials", &[], None);
    assert_eq!(resp.status, 401);
    let resp = http::request(addr, "DELETE", "/v1/credentials/1:alice", &[], None);
    assert_eq!(resp.status, 401);
    // The other configured key works too.
    let other = post(addr, Some("another-key-0123456789"), "");
    assert_eq!(other.status, 200, "{other:?}");
    server.stop();
}

#[test]
fn minted_credentials_carry_ice_servers_and_obey_the_ttl_rules() {
    let (server, addr) = start("27965-27969");
    let before = unix_now();
    let resp = post(addr, Some(KEY), r#"{"ttl": 600, "id": "carol"}"#);
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let v = resp.json();
    assert_eq!(v["ttl"], 600);
    let expires_at = v["expires_at"].as_u64().unwrap();
    assert!((before + 600..=unix_now() + 600).contains(&expires_at));
    let username = v["username"].as_str().unwrap();
    assert_eq!(username, format!("{expires_at}:carol"));
    let ice = v["iceServers"].as_array().unwrap();
    assert_eq!(ice.len(), 2, "{v}");
    assert!(
        ice[0]["urls"][0]
            .as_str()
            .unwrap()
            .starts_with("stun:turn.example.test:")
    );
    assert!(ice[0].get("username").is_none());
    assert_eq!(ice[1]["username"], v["username"]);
    assert_eq!(ice[1]["credential"], v["credential"]);
    let urls: Vec<&str> = ice[1]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(
        urls.iter().any(|u| u.ends_with("?transport=udp")),
        "{urls:?}"
    );
    assert!(
        urls.iter().any(|u| u.ends_with("?transport=tcp")),
        "{urls:?}"
    );

    // Defaults: an empty body, no id (a random one), default_ttl_secs.
    let v = post(addr, Some(KEY), "").json();
    assert_eq!(v["ttl"], 3600);
    let (_, id) = v["username"].as_str().unwrap().split_once(':').unwrap();
    assert!(id.len() >= 16, "{id}");
    let again = post(addr, Some(KEY), "{}").json();
    assert_ne!(again["username"], v["username"], "random ids differ");

    // The cap is max_ttl_secs: at it is fine, above it is a 400.
    assert_eq!(post(addr, Some(KEY), r#"{"ttl": 7200}"#).status, 200);
    for bad in [
        r#"{"ttl": 7201}"#,
        r#"{"ttl": 0}"#,
        r#"{"ttl": -5}"#,
        r#"{"id": "a:b"}"#,
        r#"{"id": "a\u0001b"}"#,
        r#"{"id": ""}"#,
        r#"{"user": "x"}"#,
        "not json",
    ] {
        let resp = post(addr, Some(KEY), bad);
        assert_eq!(resp.status, 400, "{bad}: {resp:?}");
        assert!(resp.json()["error"].is_string(), "{bad}");
    }

    // GET with a query string, as the hosted APIs take it.
    let resp = with_key(addr, "GET", "/v1/credentials?ttl=60&id=dave");
    assert_eq!(resp.status, 200, "{resp:?}");
    let v = resp.json();
    assert_eq!(v["ttl"], 60);
    assert!(v["username"].as_str().unwrap().ends_with(":dave"));
    for bad in ["?ttl=9999", "?ttl=0", "?id=a%3Ab", "?bogus=1", "?ttl=abc"] {
        let resp = with_key(addr, "GET", &format!("/v1/credentials{bad}"));
        assert_eq!(resp.status, 400, "{bad}: {resp:?}");
    }
    server.stop();
}

#[test]
fn a_minted_credential_allocates_until_it_is_revoked() {
    let (server, addr) = start("27970-27979");
    let v = post(addr, Some(KEY), r#"{"ttl": 600, "id": "erin"}"#).json();
    let credentials = Credentials::Static {
        user: v["username"].as_str().unwrap().to_owned(),
        password: v["credential"].as_str().unwrap().to_owned(),
    };
    let username = v["username"].as_str().unwrap().to_owned();
    let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
    client
        .allocate(None)
        .expect("a minted credential allocates");
    client.refresh(600).expect("and refreshes");

    // Only what the service mints can be revoked through it.
    assert_eq!(with_key(addr, "DELETE", "/v1/credentials/erin").status, 400);
    let resp = with_key(addr, "DELETE", &format!("/v1/credentials/{username}"));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["ended"], 1);

    // The allocation is gone, and the credential is refused.
    let refresh = client.refresh(600);
    assert!(refresh.is_err(), "refresh after revocation: {refresh:?}");
    let mut again = TurnClient::connect(server.udp[0], &credentials).unwrap();
    let refused = again.allocate(None);
    assert!(
        matches!(refused, Err(ClientError::Rejected { code: 401, .. })),
        "{refused:?}"
    );
    // Another credential of the same id is not affected.
    let other = post(addr, Some(KEY), r#"{"ttl": 300, "id": "erin"}"#).json();
    let credentials = Credentials::Static {
        user: other["username"].as_str().unwrap().to_owned(),
        password: other["credential"].as_str().unwrap().to_owned(),
    };
    let mut fresh = TurnClient::connect(server.udp[0], &credentials).unwrap();
    fresh
        .allocate(None)
        .expect("another credential of erin allocates");
    fresh.close().unwrap();
    server.stop();
}

/// After a reload that rotates `[turn] secrets`, the service mints with the new first
/// secret at once, and its `iceServers` name the listeners' bound ports (not the
/// configured 0).
#[test]
fn a_reload_rotates_the_minting_secret() {
    let (server, addr) = start("27985-27989");
    let before = post(addr, Some(KEY), "{}").json();
    let urls = before["iceServers"].to_string();
    let port = server.udp[0].port();
    assert!(urls.contains(&format!(":{port}?transport=udp")), "{urls}");
    assert!(!urls.contains(":0?"), "{urls}");
    let text = std::fs::read_to_string(&server.config_path)
        .unwrap()
        .replace(
            "secrets = [\"service-secret\", \"older-secret\"]",
            "secrets = [\"rotated-secret\", \"service-secret\"]",
        );
    std::fs::write(&server.config_path, text).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let minted = post(addr, Some(KEY), "{}").json();
        let username = minted["username"].as_str().unwrap().to_owned();
        let expected = turnpike_proto::auth::rest::rest_password(b"rotated-secret", &username);
        if minted["credential"].as_str() == Some(expected.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still minting with the old secret"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
}
