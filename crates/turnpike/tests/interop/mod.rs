//! Shared by the TURN interop tests (`turn_uclient.rs`, `turn_browser.rs`,
//! `selftest_page.rs`): which TURN server to test (turnpike by default, coturn with
//! `TURNPIKE_INTEROP_SERVER=coturn`), how it listens
//! (UDP, TCP, TLS with a certificate made at test time, IPv4 or IPv6 loopback), REST
//! credentials, bounded child processes, node and Chromium for the browser scripts, and a small
//! JSON reader for their reports.
//!
//! Every process started here is stopped by its PID; every wait has a deadline.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use turnpike_stun::attr::{ErrorCodeAttr, Nonce, Realm, RequestedTransport, TransportProtocol};
use turnpike_stun::{Class, Message, MessageType, MessageWriter, Method, TransactionId};

use crate::common::{ServerProcess, TempDir, binding_request, mapped_address};

/// How the client reaches the TURN server: `turn:…?transport=udp`, `turn:…?transport=tcp` or
/// `turns:…?transport=tcp`. The relayed side is UDP in every case (RFC 8656).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The name browsers report as a relay candidate's `relayProtocol`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// A certificate chain and private key in PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the server under test listens.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Listen on `[::1]` instead of `127.0.0.1`, and relay on both `127.0.0.1` and `::1`: an
    /// Allocate without REQUESTED-ADDRESS-FAMILY gets an IPv4 relay (RFC 8656 §7.2), which is
    /// what browsers send; `turnutils_uclient -x` asks for an IPv6 one.
    pub ipv6: bool,
    /// Also listen on TCP. turnpike: one TCP listener on a port of its own; coturn listens on
    /// TCP on its UDP port in any case.
    pub tcp: bool,
    /// TLS on the TCP listener (turnpike tells TLS from plain TCP by the first byte; coturn
    /// does the same on its listening port). Implies `tcp`.
    pub tls: Option<CertFiles>,
}

impl Setup {
    fn loopback(&self) -> IpAddr {
        if self.ipv6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }

    fn relay_ips(&self) -> &'static [&'static str] {
        if self.ipv6 {
            &["127.0.0.1", "::1"]
        } else {
            &["127.0.0.1"]
        }
    }
}

/// turnpike's configuration for the TURN interop tests, keys as in the repository's
/// `turnserver.toml` ([listen], [turn], [relay], [peers], [tls]). Port 0 everywhere: the
/// chosen ports are read from turnpike's `listening` lines. Loopback peers are needed because
/// `turnutils_peer` and the browser's other peer connection live on loopback.
pub fn turnpike_config(secret: &str, relay_ports: (u16, u16), setup: &Setup) -> String {
    let host = match setup.loopback() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let tcp = if setup.tcp || setup.tls.is_some() {
        format!("\"{host}:0\"")
    } else {
        String::new()
    };
    let ips: Vec<String> = setup
        .relay_ips()
        .iter()
        .map(|ip| format!("\"{ip}\""))
        .collect();
    let mut config = format!(
        r#"
[listen]
udp = ["{host}:0"]
tcp = [{tcp}]
[turn]
realm = "{REALM}"
secrets = ["{secret}"]
[relay]
ips = [{ips}]
ports = "{a}-{b}"
[peers]
dangerous_allow_loopback_peers = true
"#,
        ips = ips.join(", "),
        a = relay_ports.0,
        b = relay_ports.1,
    );
    if let Some(files) = &setup.tls {
        config.push_str(&format!(
            "[tls]\ncert = {}\nkey = {}\n",
            toml_literal(&files.cert),
            toml_literal(&files.key)
        ));
    }
    config
}

/// A path as a TOML literal string (no escapes: temporary paths have no `'`).
fn toml_literal(path: &Path) -> String {
    let text = path.to_str().expect("UTF-8 temporary path");
    assert!(!text.contains('\''), "path with a quote: {text}");
    format!("'{text}'")
}

/// A self-signed certificate made at test time with the `openssl` CLI: EC P-256,
/// subjectAltName IP:127.0.0.1 and IP:::1, valid two days. Removed with its directory on drop.
pub struct TestCert {
    pub files: CertFiles,
    /// base64(SHA-256(SubjectPublicKeyInfo DER)): what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes to accept this certificate.
    pub spki_sha256: String,
    _dir: TempDir,
}

impl TestCert {
    pub fn generate(tag: &str) -> Self {
        Self::generate_with(tag, &[])
    }

    /// A certificate that is not a CA (`basicConstraints CA:FALSE`), so a client can
    /// trust it as its own root (rustls refuses a CA certificate as the end entity).
    pub fn generate_leaf(tag: &str) -> Self {
        Self::generate_with(tag, &["-addext", "basicConstraints=critical,CA:FALSE"])
    }

    fn generate_with(tag: &str, extra: &[&str]) -> Self {
        let dir = TempDir::new(&format!("cert-{tag}"));
        let cert = dir.0.join("cert.pem");
        let key = dir.0.join("key.pem");
        let mut req = Command::new("openssl");
        req.args(["req", "-x509", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
            ])
            .args(["-subj", "/CN=turnpike.test"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,IP:::1"])
            .args(extra)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert);
        let run = run_bounded(req, Duration::from_secs(20));
        assert!(
            run.code() == Some(0) && cert.is_file() && key.is_file(),
            "openssl req failed ({:?}): {}",
            run.status,
            run.stderr
        );
        // The SPKI hash Chromium's --ignore-certificate-errors-spki-list wants (openssl x509
        // -pubkey | pkey -pubin -outform der | dgst -sha256 | base64), and the same hash from the private key:
        // they agree only if the key is the certificate's.
        let from_cert = spki_sha256(&format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der",
            cert.display()
        ));
        let from_key = spki_sha256(&format!(
            "openssl pkey -in '{}' -pubout -outform der",
            key.display()
        ));
        assert_eq!(from_cert, from_key, "certificate and key do not match");
        Self {
            files: CertFiles { cert, key },
            spki_sha256: from_cert,
            _dir: dir,
        }
    }
}

/// base64 of the SHA-256 of what `der_command` (a shell pipeline) prints.
fn spki_sha256(der_command: &str) -> String {
    let mut sh = Command::new("bash");
    sh.args(["-o", "pipefail", "-c"]).arg(format!(
        "{der_command} | openssl dgst -sha256 -binary | base64"
    ));
    let run = run_bounded(sh, Duration::from_secs(20));
    let hash = run.stdout.trim().to_owned();
    assert!(
        run.code() == Some(0) && hash.len() == 44 && hash.ends_with('='),
        "SPKI hash pipeline failed ({:?}): {hash:?} {}",
        run.status,
        run.stderr
    );
    hash
}

/// The realm in [`turnpike_config`]; coturn is given the same one.
pub const REALM: &str = "turnpike.test";

/// Which server the interop tests drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Turnpike,
    Coturn,
}

impl ServerKind {
    /// `TURNPIKE_INTEROP_SERVER=coturn` selects coturn's `turnserver`; unset or `turnpike`
    /// selects our binary.
    pub fn from_env() -> Self {
        match std::env::var("TURNPIKE_INTEROP_SERVER").as_deref() {
            Ok("coturn") => Self::Coturn,
            Ok("turnpike") | Ok("") | Err(_) => Self::Turnpike,
            Ok(other) => panic!("TURNPIKE_INTEROP_SERVER={other}: want turnpike or coturn"),
        }
    }
}

/// What a client needs to reach a TURN server with REST credentials.
#[derive(Clone, Debug)]
pub struct TurnTarget {
    /// Where the server takes UDP.
    pub addr: SocketAddr,
    /// Where it takes TCP (and TLS, when `tls`), if it was asked to.
    pub tcp: Option<SocketAddr>,
    /// Whether TLS is served on `tcp`.
    pub tls: bool,
    /// The REST API shared secret (coturn's `static-auth-secret`).
    pub secret: String,
    /// The server's realm. Clients learn it from the 401, so it is only checked against
    /// what a client reports, never sent by us.
    pub realm: String,
    /// The relay port range the server was given, to check relayed addresses against.
    pub relay_ports: (u16, u16),
}

/// A running TURN server of either kind, stopped by its PID on drop.
pub struct TurnServer {
    pub kind: ServerKind,
    pub target: TurnTarget,
    inner: Inner,
}

enum Inner {
    Turnpike(ServerProcess),
    Coturn(Coturn),
}

impl TurnServer {
    /// Starts the server chosen by [`ServerKind::from_env`] with `secret` and relay ports
    /// `relay_ports` (inclusive), and waits until it answers a STUN Binding.
    pub fn start(tag: &str, secret: &str, relay_ports: (u16, u16)) -> Self {
        Self::start_kind(ServerKind::from_env(), tag, secret, relay_ports)
    }

    pub fn start_kind(kind: ServerKind, tag: &str, secret: &str, relay_ports: (u16, u16)) -> Self {
        Self::start_setup(kind, tag, secret, relay_ports, &Setup::default())
    }

    /// As [`TurnServer::start`], listening as `setup` says.
    pub fn start_with(tag: &str, secret: &str, relay_ports: (u16, u16), setup: &Setup) -> Self {
        Self::start_setup(ServerKind::from_env(), tag, secret, relay_ports, setup)
    }

    pub fn start_setup(
        kind: ServerKind,
        tag: &str,
        secret: &str,
        relay_ports: (u16, u16),
        setup: &Setup,
    ) -> Self {
        let want_tcp = setup.tcp || setup.tls.is_some();
        let (addr, tcp, inner) = match kind {
            ServerKind::Turnpike => {
                let config = turnpike_config(secret, relay_ports, setup);
                let server = ServerProcess::start(tag, &config);
                let tcp = server.tcp.first().copied();
                assert_eq!(tcp.is_some(), want_tcp, "turnpike's TCP listener: {tcp:?}");
                (server.udp[0], tcp, Inner::Turnpike(server))
            }
            ServerKind::Coturn => {
                let coturn = Coturn::start_setup(tag, secret, REALM, relay_ports, setup);
                let tcp = want_tcp.then_some(coturn.addr);
                (coturn.addr, tcp, Inner::Coturn(coturn))
            }
        };
        wait_for_stun(addr, Duration::from_secs(10)).unwrap_or_else(|e| {
            panic!("{kind:?} at {addr} never answered a STUN Binding: {e}");
        });
        Self {
            kind,
            target: TurnTarget {
                addr,
                tcp,
                tls: setup.tls.is_some(),
                secret: secret.to_owned(),
                realm: REALM.to_owned(),
                relay_ports,
            },
            inner,
        }
    }

    /// The server's own log, where there is one (coturn's), for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.inner {
            Inner::Turnpike(_) => String::from("(turnpike logs to the test's stderr)"),
            Inner::Coturn(c) => c.log_tail(lines),
        }
    }

    pub fn pid(&self) -> u32 {
        match &self.inner {
            Inner::Turnpike(s) => s.pid(),
            Inner::Coturn(c) => c.child.id(),
        }
    }
}

/// coturn's `turnserver` with loopback listening and relay IPs, REST secret, loopback peers
/// allowed, no CLI/TLS/DTLS, FINGERPRINT on, its own userdb, pidfile and log (see `start`).
pub struct Coturn {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    dir: TempDir,
}

impl Coturn {
    pub fn start(tag: &str, secret: &str, realm: &str, relay_ports: (u16, u16)) -> Self {
        Self::start_setup(tag, secret, realm, relay_ports, &Setup::default())
    }

    /// With `setup.ipv6` it listens on ::1 and relays on 127.0.0.1 and ::1; with `setup.tls`
    /// it takes TLS on its listening port too (and on a second, free, `tls-listening-port`).
    pub fn start_setup(
        tag: &str,
        secret: &str,
        realm: &str,
        relay_ports: (u16, u16),
        setup: &Setup,
    ) -> Self {
        let dir = TempDir::new(&format!("coturn-{tag}"));
        let ip = setup.loopback();
        let port = free_udp_tcp_port_on(ip);
        let log = dir.0.join("turnserver.log");
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new("turnserver");
        cmd.arg("-n").arg(format!("--listening-ip={ip}"));
        for relay in setup.relay_ips() {
            cmd.arg(format!("--relay-ip={relay}"));
        }
        match &setup.tls {
            Some(files) => {
                let tls_port = std::iter::repeat_with(|| free_udp_tcp_port_on(ip))
                    .find(|&p| p != port)
                    .unwrap();
                cmd.arg(format!("--cert={}", files.cert.display()))
                    .arg(format!("--pkey={}", files.key.display()))
                    .arg(format!("--tls-listening-port={tls_port}"));
            }
            None => {
                cmd.arg("--no-tls");
            }
        }
        let child = cmd
            .args([
                &format!("--listening-port={port}"),
                &format!("--min-port={}", relay_ports.0),
                &format!("--max-port={}", relay_ports.1),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                &format!("--realm={realm}"),
                "--allow-loopback-peers",
                "--no-cli",
                "--no-dtls",
                "--fingerprint",
            ])
            .arg(format!("--userdb={}", dir.0.join("turndb").display()))
            .arg(format!("--pidfile={}", dir.0.join("pid").display()))
            .arg("--log-file=stdout")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("turnserver is installed (Debian package coturn)");
        Self {
            child,
            addr: SocketAddr::new(ip, port),
            log,
            dir,
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// SIGTERM by PID, then SIGKILL after `grace`; reaps the child.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A loopback port free for both UDP and TCP right now (coturn listens on both).
pub fn free_udp_tcp_port() -> u16 {
    free_udp_tcp_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A port of `ip` free for both UDP and TCP right now.
pub fn free_udp_tcp_port_on(ip: IpAddr) -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind((ip, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no port of {ip} free for both UDP and TCP");
}

/// A loopback UDP port free right now.
pub fn free_udp_port() -> u16 {
    free_udp_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A UDP port of `ip` free right now.
pub fn free_udp_port_on(ip: IpAddr) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The loopback address of `addr`'s family, port 0: where to bind a client socket for it.
pub fn any_loopback_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    }
}

/// Sends STUN Binding requests every 100 ms until one is answered or `limit` passes.
pub fn wait_for_stun(addr: SocketAddr, limit: Duration) -> Result<SocketAddr, String> {
    let socket = UdpSocket::bind(any_loopback_for(addr)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut n = 0u8;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        n = n.wrapping_add(1);
        let tid = [n; 12];
        let _ = socket.send_to(&binding_request(tid), addr);
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            if from == addr {
                return Ok(mapped_address(&buf[..len], tid));
            }
        }
    }
    Err(format!("no answer within {limit:?}"))
}

/// How a server answered an Allocate that carried no credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The ERROR-CODE, or `None` for a success (or an answer without one).
    pub code: Option<u16>,
    pub realm: Option<String>,
    pub nonce: Option<String>,
}

/// Sends an Allocate (REQUESTED-TRANSPORT UDP, FINGERPRINT) without credentials, as every
/// TURN client's first request is, and returns the answer's ERROR-CODE, REALM and NONCE.
pub fn unauthenticated_allocate(addr: SocketAddr) -> Result<Challenge, String> {
    let socket = UdpSocket::bind(any_loopback_for(addr)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let tid = TransactionId(*b"turnpike-401");
    let mut buf = vec![0u8; 128];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::Request),
        tid,
    )
    .map_err(|e| e.to_string())?;
    w.put(&RequestedTransport(TransportProtocol::UDP))
        .map_err(|e| e.to_string())?;
    w.put_fingerprint().map_err(|e| e.to_string())?;
    let n = w.finish();
    buf.truncate(n);
    let mut answer = [0u8; 1500];
    for _ in 0..3 {
        socket.send_to(&buf, addr).map_err(|e| e.to_string())?;
        let Ok((len, from)) = socket.recv_from(&mut answer) else {
            continue;
        };
        if from != addr {
            continue;
        }
        let msg = Message::new_checked(&answer[..len]).map_err(|e| format!("{e:?}"))?;
        if msg.transaction_id() != tid {
            continue;
        }
        let code = msg
            .get::<ErrorCodeAttr>()
            .map_err(|e| format!("ERROR-CODE: {e:?}"))?
            .map(|e| e.code.code());
        let realm = msg
            .get::<Realm>()
            .map_err(|e| format!("REALM: {e:?}"))?
            .map(|r| r.0.to_owned());
        let nonce = msg
            .get::<Nonce>()
            .map_err(|e| format!("NONCE: {e:?}"))?
            .map(|r| r.0.to_owned());
        return Ok(Challenge { code, realm, nonce });
    }
    Err("no answer to an unauthenticated Allocate".to_owned())
}

/// The REST API (draft-uberti-behave-turn-rest) credentials for `user`, valid `ttl` from now:
/// username `"<unix expiry>:<user>"`, password `base64(HMAC-SHA1(secret, username))`.
pub fn rest_credentials(secret: &str, user: &str, ttl: Duration) -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rest_credentials_at(secret, user, now + ttl.as_secs())
}

/// As [`rest_credentials`] with an explicit expiry (a past one makes expired credentials).
pub fn rest_credentials_at(secret: &str, user: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{user}");
    let password = base64(&hmac_sha1(secret.as_bytes(), username.as_bytes()));
    (username, password)
}

/// HMAC-SHA1 through `openssl dgst` (no crypto crates among this crate's dev-dependencies).
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = std::str::from_utf8(key).expect("openssl -hmac takes a text key");
    let mut child = Command::new("openssl")
        .args(["dgst", "-binary", "-sha1", "-hmac", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.len() == 20,
        "openssl dgst -hmac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// This directory: the node scripts, `package.json` and (after `npm ci`) `node_modules`.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Debian's Chromium, or `TURNPIKE_CHROMIUM`.
pub fn chromium_path() -> String {
    std::env::var("TURNPIKE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Checks node and Chromium are there, and runs `npm ci` once if playwright-core is missing;
/// panics saying what is missing.
pub fn ensure_browser_prerequisites() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let node = Command::new("node").arg("--version").output();
        if !node.is_ok_and(|o| o.status.success()) {
            return Err("`node` not found: install Node.js >= 20".into());
        }
        if !Path::new(&chromium_path()).exists() {
            return Err(format!(
                "{} not found: apt-get install -y chromium",
                chromium_path()
            ));
        }
        let dir = interop_dir();
        if dir
            .join("node_modules/playwright-core/package.json")
            .exists()
        {
            return Ok(());
        }
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir);
        let run = run_bounded(npm, Duration::from_secs(300));
        if run.status.is_some_and(|s| s.success()) {
            Ok(())
        } else {
            Err(format!(
                "npm ci in {} failed ({:?}, timed out: {}):\n{}{}",
                dir.display(),
                run.status,
                run.timed_out,
                run.stdout,
                run.stderr
            ))
        }
    });
    if let Err(why) = ready {
        panic!("browser interop prerequisites: {why}");
    }
}

/// The outcome of [`run_bounded`].
#[derive(Debug)]
pub struct Bounded {
    /// `None` only if the child could not be reaped.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Bounded {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The last line of stdout that is a JSON object (a script's report), or `Json::Null`.
    pub fn last_json(&self) -> Json {
        self.stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .and_then(|l| Json::parse(l).ok())
            .unwrap_or(Json::Null)
    }
}

/// Runs `cmd` with stdin closed and output captured, in its own process group, for at most
/// `limit`. Past it: SIGTERM to the PID, a 5 s grace, then SIGKILL to the PID and to each of its
/// descendants as they were before the SIGTERM (a browser started by node is one), each by PID.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Bounded {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let deadline = start + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let family = descendants(child.id());
            let status = terminate(&mut child, Duration::from_secs(5));
            for (pid, started) in family {
                if proc_start_time(pid) == Some(started) {
                    signal(pid, "KILL");
                }
            }
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wait = Duration::from_secs(3);
    Bounded {
        status,
        stdout: stdout.recv_timeout(wait).unwrap_or_default(),
        stderr: stderr.recv_timeout(wait).unwrap_or_default(),
        timed_out,
        elapsed: start.elapsed(),
    }
}

fn collect(mut r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// `(ppid, starttime)` of a process from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, starttime field 22.
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

fn proc_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// Every descendant of `root`, with its start time (to never signal a reused PID).
pub fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut children: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, started)) = proc_stat(pid) {
                children.entry(ppid).or_default().push((pid, started));
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &(c, t) in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push((c, t));
            todo.push(c);
        }
    }
    out
}

/// A JSON value: just enough to read the browser script's report without serde_json.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Self>),
    Obj(Vec<(String, Self)>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at {}", p.i));
        }
        Ok(v)
    }

    /// The value at a dotted path of object keys and array indices: `"pc1.selectedPair.local"`.
    pub fn at(&self, path: &str) -> &Self {
        static NULL: Json = Json::Null;
        let mut v = self;
        for key in path.split('.').filter(|k| !k.is_empty()) {
            v = match v {
                Self::Obj(fields) => fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(&NULL, |(_, v)| v),
                Self::Arr(items) => key
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .unwrap_or(&NULL),
                _ => &NULL,
            };
        }
        v
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            Self::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn arr(&self) -> &[Self] {
        match self {
            Self::Arr(items) => items,
            _ => &[],
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err("unexpected end".into());
        };
        match c {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return Err(format!("expected ':' at {}", self.i));
                    }
                    fields.push((key, self.value()?));
                    self.ws();
                    if self.eat("}") {
                        return Ok(Json::Obj(fields));
                    }
                    if !self.eat(",") {
                        return Err(format!("expected ',' or '}}' at {}", self.i));
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(Json::Arr(items));
                    }
                    if !self.eat(",") {
                        return Err(format!("expected ',' or ']' at {}", self.i));
                    }
                }
            }
            b'"' => self.string().map(Json::Str),
            b't' if self.eat("true") => Ok(Json::Bool(true)),
            b'f' if self.eat("false") => Ok(Json::Bool(false)),
            b'n' if self.eat("null") => Ok(Json::Null),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad value at {start}"))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if !self.eat("\"") {
            return Err(format!("expected string at {}", self.i));
        }
        let mut out = String::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("bad escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("bad \\u")?;
                            self.i += 4;
                            let mut cp = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            if (0xD800..0xDC00).contains(&cp) && self.eat("\\u") {
                                let hex = self.s.get(self.i..self.i + 4).ok_or("bad \\u")?;
                                self.i += 4;
                                let lo = u32::from_str_radix(
                                    std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                    16,
                                )
                                .map_err(|e| e.to_string())?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo.wrapping_sub(0xDC00));
                            }
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other as char),
                    }
                }
                _ => {
                    // Copy a run of plain UTF-8 bytes.
                    let start = self.i - 1;
                    while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\') {
                        self.i += 1;
                    }
                    out.push_str(
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?,
                    );
                }
            }
        }
    }
}

/// Checks of the helpers themselves: run by each test file that includes this module.
pub fn self_check() {
    // RFC 2202 test case 2 for HMAC-SHA1, and RFC 4648's base64 vectors.
    assert_eq!(
        hmac_sha1(b"Jefe", b"what do ya want for nothing?"),
        [
            0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
            0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
        ]
    );
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
    let (user, pass) = rest_credentials_at("s3cret", "alice", 1_700_000_000);
    assert_eq!(user, "1700000000:alice");
    assert_eq!(pass.len(), 28);
    let j = Json::parse(r#"{"a":[1,{"b":"x\"y\u00e9"}],"c":true,"d":null,"e":-1.5e2}"#).unwrap();
    assert_eq!(j.at("a.1.b").str(), Some("x\"yé"));
    assert_eq!(j.at("a.0").num(), Some(1.0));
    assert_eq!(j.at("c").bool(), Some(true));
    assert_eq!(j.at("e").num(), Some(-150.0));
    assert_eq!(j.at("nope.x"), &Json::Null);
}
