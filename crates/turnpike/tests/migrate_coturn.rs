//! `turnpike migrate-coturn` against the real binary: four coturn configurations of the
//! kinds deployed (REST secrets behind a cloud NAT, static users with keys and a peer
//! policy, TLS with alternates, a file with every quirk) are migrated; the TOML holds the
//! values expected, stderr names the lines not carried, and `turnpike -c OUT
//! check-config` accepts the result. Then a server runs on a migrated file (ports
//! 30000-30099) and a REST credential from the migrated secret and a static user with a
//! `0x` key each get an Allocate through.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::turn_client::Client;
use common::{ServerProcess, TempDir, turnpike_bin};
use turnpike_stun::attr::{
    PasswordAlgorithmId, RequestedTransport, TransportProtocol, XorRelayedAddress,
};
use turnpike_stun::{Class, LongTermKey, Message, Method};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/coturn")
        .join(name)
}

/// Runs `turnpike migrate-coturn INPUT -o OUT`; returns the output, the TOML and the
/// stderr lines.
fn migrate(input: &Path, out: &Path) -> (Output, toml::Table, Vec<String>) {
    let run = Command::new(turnpike_bin())
        .arg("migrate-coturn")
        .arg(input)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let text = std::fs::read_to_string(out).unwrap();
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
    (run, table, stderr.lines().map(str::to_owned).collect())
}

fn check_config(path: &Path) {
    let run = Command::new(turnpike_bin())
        .arg("-c")
        .arg(path)
        .arg("check-config")
        // The fixtures are other machines' files: their addresses are not this one's.
        .arg("--skip-host-checks")
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "check-config: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn get<'a>(t: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut parts = path.split('.');
    let mut v = t
        .get(parts.next().unwrap())
        .unwrap_or_else(|| panic!("no {path}"));
    for p in parts {
        v = v.get(p).unwrap_or_else(|| panic!("no {path}"));
    }
    v
}

fn strings(t: &toml::Table, path: &str) -> Vec<String> {
    get(t, path)
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The stderr line for `file:line: key:` exists (and mentions `needle`).
fn noted(notes: &[String], prefix: &str, needle: &str) {
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(prefix) && n.contains(needle)),
        "no note {prefix:?} with {needle:?} in:\n{}",
        notes.join("\n")
    );
}

#[test]
fn rest_cloud_deployment() {
    let dir = TempDir::new("migrate-rest");
    let out = dir.0.join("turnserver.toml");
    let (_, t, notes) = migrate(&fixture("rest-cloud.conf"), &out);
    assert_eq!(
        strings(&t, "listen.udp"),
        ["10.0.0.5:3478", "[2001:db8:5::5]:3478"]
    );
    assert_eq!(strings(&t, "listen.tcp"), strings(&t, "listen.udp"));
    assert_eq!(strings(&t, "relay.ips"), ["10.0.0.5", "2001:db8:5::5"]);
    assert_eq!(
        strings(&t, "relay.external_ip"),
        ["203.0.113.10/10.0.0.5", "203.0.113.11/10.0.0.6"]
    );
    assert_eq!(get(&t, "relay.ports").as_str(), Some("49160-59999"));
    assert_eq!(
        strings(&t, "turn.secrets"),
        [
            "7f9a2c1e5b8d4f60a3e1c9b7d5f3a1e0",
            "old-secret-rotating-out-2025"
        ]
    );
    assert_eq!(get(&t, "turn.realm").as_str(), Some("turn.example.com"));
    assert_eq!(get(&t, "turn.nonce_lifetime_secs").as_integer(), Some(600));
    assert_eq!(get(&t, "quotas.allocations_total").as_integer(), Some(5000));
    assert_eq!(
        get(&t, "quotas.allocations_per_user").as_integer(),
        Some(20)
    );
    assert_eq!(strings(&t, "peers.deny"), ["10.0.0.0/8", "169.254.0.0/16"]);
    assert_eq!(get(&t, "admin.enabled").as_bool(), Some(false));
    assert_eq!(get(&t, "metrics.enabled").as_bool(), Some(true));
    assert!(t.get("tls").is_none(), "no-tls");
    noted(&notes, "rest-cloud.conf:7: relay-ip:", "one IPv4");
    noted(&notes, "rest-cloud.conf:33: syslog:", "not carried");
    noted(&notes, "rest-cloud.conf:34: pidfile:", "not carried");
    assert_eq!(notes.len(), 3, "{notes:#?}");
    check_config(&out);
}

#[test]
fn lt_cred_mech_with_users_keys_peers_and_quotas() {
    let dir = TempDir::new("migrate-ltcred");
    let out = dir.0.join("turnserver.toml");
    let (_, t, notes) = migrate(&fixture("ltcred.conf"), &out);
    let users = get(&t, "turn.users").as_array().unwrap();
    assert_eq!(users.len(), 2, "{users:?}");
    assert_eq!(users[0].get("name").unwrap().as_str(), Some("ninefingers"));
    assert_eq!(
        users[0].get("key").unwrap().as_str(),
        Some("0xbc807ee29df3c9ffa736523fb2c4e8ee")
    );
    assert_eq!(
        users[1].get("password").unwrap().as_str(),
        Some("wonderland")
    );
    assert_eq!(get(&t, "turn.realm").as_str(), Some("north.gov"));
    assert_eq!(get(&t, "quotas.allocations_per_user").as_integer(), Some(4));
    assert_eq!(get(&t, "quotas.allocations_total").as_integer(), Some(200));
    assert_eq!(
        get(&t, "quotas.bandwidth_bytes_per_sec").as_integer(),
        Some(128_000)
    );
    assert_eq!(get(&t, "turn.max_lifetime_secs").as_integer(), Some(7200));
    assert_eq!(get(&t, "turn.mobility").as_bool(), Some(true));
    assert_eq!(get(&t, "turn.tcp_relay").as_bool(), Some(false));
    assert_eq!(get(&t, "log.level").as_str(), Some("debug"));
    assert_eq!(
        strings(&t, "peers.allow"),
        ["83.166.68.45/32", "10.20.0.0/16"]
    );
    let deny = strings(&t, "peers.deny");
    // 83.166.64.0-83.166.95.255 less the allowed 83.166.68.45 (coturn: allowed wins).
    assert!(deny.contains(&"83.166.64.0/22".to_owned()));
    assert!(deny.contains(&"83.166.68.44/32".to_owned()));
    assert!(deny.contains(&"83.166.68.46/31".to_owned()));
    assert!(deny.contains(&"83.166.80.0/20".to_owned()));
    assert!(!deny.iter().any(|c| c.starts_with("83.166.68.45")));
    for c in [
        "172.16.0.1/32",
        "172.16.0.2/31",
        "172.16.0.4/30",
        "172.16.0.8/31",
        "172.16.0.10/32",
        "192.0.2.77/32",
        "2001:db8:bad::/120",
    ] {
        assert!(deny.contains(&c.to_owned()), "{c} in {deny:?}");
    }
    noted(&notes, "ltcred.conf:6: user:", "MD5 only");
    noted(&notes, "ltcred.conf:8: user:", "32 hex digits");
    noted(&notes, "ltcred.conf:9: userdb:", "no user database");
    noted(&notes, "ltcred.conf:18: bps-capacity:", "not carried");
    noted(&notes, "ltcred.conf:29: channel-lifetime:", "RFC 8656");
    noted(&notes, "ltcred.conf:30: permission-lifetime:", "RFC 8656");
    noted(&notes, "ltcred.conf:35: log-file:", "stderr");
    noted(&notes, "ltcred.conf:36: simple-log:", "not carried");
    assert_eq!(notes.len(), 8, "{notes:#?}");
    check_config(&out);
}

/// A self-signed certificate and key, as coturn's cert= and pkey= name them.
fn make_cert(dir: &Path) {
    let run = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=turns.example.net"])
        .arg("-keyout")
        .arg(dir.join("turn_server_pkey.pem"))
        .arg("-out")
        .arg(dir.join("turn_server_cert.pem"))
        .output()
        .expect("openssl");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn tls_with_alternates() {
    let dir = TempDir::new("migrate-tls");
    // cert= and pkey= are relative: coturn reads them from the configuration's directory.
    let input = dir.0.join("turnserver.conf");
    std::fs::copy(fixture("tls.conf"), &input).unwrap();
    make_cert(&dir.0);
    let out = dir.0.join("turnserver.toml");
    let (_, t, notes) = migrate(&input, &out);
    let canon = dir.0.canonicalize().unwrap();
    assert_eq!(
        get(&t, "tls.cert").as_str(),
        Some(canon.join("turn_server_cert.pem").to_str().unwrap())
    );
    assert_eq!(
        get(&t, "tls.key").as_str(),
        Some(canon.join("turn_server_pkey.pem").to_str().unwrap())
    );
    assert_eq!(
        strings(&t, "listen.udp"),
        ["198.51.100.20:3478", "198.51.100.20:3479"]
    );
    assert_eq!(
        strings(&t, "listen.tcp"),
        [
            "198.51.100.20:3478",
            "198.51.100.20:3479",
            "198.51.100.20:443"
        ]
    );
    assert_eq!(
        strings(&t, "alternates.udp"),
        ["198.51.100.21:3478", "[2001:db8:21::1]:3478"]
    );
    assert_eq!(strings(&t, "alternates.tcp"), strings(&t, "alternates.udp"));
    assert_eq!(
        strings(&t, "alternates.tls"),
        ["198.51.100.21:443", "198.51.100.22:5349"]
    );
    assert_eq!(get(&t, "log.level").as_str(), Some("trace"));
    for (line, key) in [
        (11, "pkey-pwd"),
        (12, "cipher-list"),
        (13, "dh-file"),
        (16, "dtls"),
        (29, "web-admin"),
        (30, "web-admin-port"),
    ] {
        noted(
            &notes,
            &format!("turnserver.conf:{line}: {key}:"),
            "not carried",
        );
    }
    assert_eq!(notes.len(), 6, "{notes:#?}");
    check_config(&out);
}

#[test]
fn every_quirk_of_the_file_format() {
    let dir = TempDir::new("migrate-messy");
    let out = dir.0.join("turnserver.toml");
    let (_, t, notes) = migrate(&fixture("messy.conf"), &out);
    assert_eq!(strings(&t, "listen.udp"), ["127.0.0.1:3478", "[::1]:3478"]);
    assert_eq!(strings(&t, "relay.ips"), ["127.0.0.1"]);
    assert_eq!(get(&t, "turn.realm").as_str(), Some("new.example.org"));
    assert_eq!(
        strings(&t, "turn.secrets"),
        ["quoted#secret with spaces", "plain#hash-inside"]
    );
    let users = get(&t, "turn.users").as_array().unwrap();
    assert_eq!(
        users[0].get("password").unwrap().as_str(),
        Some("pass word # not a comment")
    );
    assert_eq!(users[1].get("name").unwrap().as_str(), Some("erin"));
    assert_eq!(get(&t, "turn.nonce_lifetime_secs").as_integer(), Some(600));
    assert_eq!(get(&t, "turn.max_lifetime_secs").as_integer(), Some(600));
    assert_eq!(get(&t, "turn.mobility").as_bool(), Some(true));
    assert_eq!(get(&t, "relay.ports").as_str(), Some("40000-45000"));
    assert_eq!(strings(&t, "relay.external_ip"), ["192.0.2.99"]);
    assert_eq!(
        get(&t, "peers.dangerous_allow_loopback_peers").as_bool(),
        Some(true)
    );
    assert_eq!(get(&t, "log.level").as_str(), Some("trace"));
    assert_eq!(get(&t, "metrics.listen").as_str(), Some("127.0.0.1:9700"));
    for (line, key, needle) in [
        (8, "realm", "overridden by line 9"),
        (13, "static-auth-secret", "listed once"),
        (21, "max-allocate-lifetime", "600 used"),
        (25, "external-ip", "not carried"),
        (28, "denied-peer-ip", "above the last"),
        (33, "redis-userdb", "no user database"),
        (34, "psql-userdb", "no user database"),
        (35, "server-name", "oAuth"),
        (37, "cli-password", "admin API"),
        (43, "frobnicate", "not an option this migrator knows"),
        (44, "rest-api-separator", "':'"),
    ] {
        noted(&notes, &format!("messy.conf:{line}: {key}:"), needle);
    }
    check_config(&out);
}

#[test]
fn unreadable_input_and_bad_usage_exit_2() {
    let run = Command::new(turnpike_bin())
        .args(["migrate-coturn", "/nonexistent/turnserver.conf"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot read"));
    let run = Command::new(turnpike_bin())
        .args(["migrate-coturn"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    // Without -o the TOML goes to stdout.
    let run = Command::new(turnpike_bin())
        .arg("migrate-coturn")
        .arg(fixture("rest-cloud.conf"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    let text = String::from_utf8(run.stdout).unwrap();
    assert!(text.parse::<toml::Table>().unwrap().contains_key("relay"));
}

const REALM: &str = "lab.example.org";
const SECRET: &str = "migrated-lab-secret";
const KEY_USER: (&str, &str) = ("keyuser", "correct horse battery staple");

fn allocate(client: &mut Client) -> std::net::SocketAddr {
    let resp = client.request(Method::ALLOCATE, |w| {
        w.put(&RequestedTransport(TransportProtocol::UDP))
    });
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(msg.message_type().class, Class::Success, "Allocate");
    msg.get::<XorRelayedAddress>().unwrap().unwrap().0
}

/// A coturn lab configuration (REST secret and a static user with its turnadmin key)
/// migrated and run: both credentials allocate.
#[test]
fn migrated_credentials_allocate_on_the_running_server() {
    let dir = TempDir::new("migrate-run");
    let key = match LongTermKey::derive(PasswordAlgorithmId::MD5, KEY_USER.0, REALM, KEY_USER.1)
        .unwrap()
    {
        LongTermKey::Md5(k) => k.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        LongTermKey::Sha256(_) => unreachable!(),
    };
    let conf = format!(
        "listening-ip=127.0.0.1\nlistening-port=30031\nrelay-ip=127.0.0.1\n\
         min-port=30040\nmax-port=30099\nrealm={REALM}\nuse-auth-secret\n\
         static-auth-secret={SECRET}\nlt-cred-mech\nuser={}:0x{key}\n\
         allow-loopback-peers\nno-tls\nno-dtls\nfingerprint\n",
        KEY_USER.0
    );
    let input = dir.0.join("turnserver.conf");
    std::fs::write(&input, conf).unwrap();
    let out = dir.0.join("turnserver.toml");
    let (_, _, notes) = migrate(&input, &out);
    noted(&notes, "turnserver.conf:10: user:", "MD5 only");
    // explain-auth on the migrated file: the key user works with MD5, not SHA-256.
    let explain = |alg: &str| {
        Command::new(turnpike_bin())
            .arg("-c")
            .arg(&out)
            .args([
                "explain-auth",
                "--username",
                KEY_USER.0,
                "--password",
                KEY_USER.1,
            ])
            .args(["--algorithm", alg])
            .output()
            .unwrap()
    };
    assert_eq!(explain("md5").status.code(), Some(0));
    let sha = explain("sha256");
    assert_eq!(sha.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&sha.stdout).contains("only the MD5 key"));

    let text = std::fs::read_to_string(&out).unwrap();
    let server = ServerProcess::start("migrate-run", &text);
    let addr: std::net::SocketAddr = "127.0.0.1:30031".parse().unwrap();
    assert!(server.udp.contains(&addr), "{:?}", server.udp);
    let mut rest = Client::new(addr, SECRET, "migrated");
    let relayed = allocate(&mut rest);
    assert!((30040..=30099).contains(&relayed.port()), "{relayed}");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let mut keyed = Client::with_password(addr, KEY_USER.0, KEY_USER.1, socket);
    let relayed = allocate(&mut keyed);
    assert!((30040..=30099).contains(&relayed.port()), "{relayed}");
    assert_eq!(server.stop().code(), Some(0));
}
