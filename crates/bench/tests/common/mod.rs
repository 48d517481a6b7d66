//! Starting the real `turnpike` binary for the bench's integration tests.
//!
//! Cargo gives a test `CARGO_BIN_EXE_*` only for binaries of its own package, so the
//! server binary is found by path: `$TURNPIKE_BIN` if set, else
//! `<workspace>/target/debug/turnpike`; if that is missing the test runs
//! `cargo build -p turnpike` once (bounded by a timeout) and uses the result. A binary
//! that already exists is used as it is (run `cargo build -p turnpike` to refresh it).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use turnpike_bench::Credentials;

/// The tests of a file run one at a time: each is a short load on a 2-core machine (a
/// calibration flood next to a loss-free assertion would make it flaky).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// REST credentials for `user` with the servers' secret `S`.
pub fn credentials(user: &str) -> Credentials {
    Credentials::Rest {
        secret: "S".into(),
        user: user.into(),
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The path of the turnpike server binary, building it if needed.
pub fn turnpike_bin() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    if let Some(p) = std::env::var_os("TURNPIKE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let bin = target.join("debug").join("turnpike");
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut child = Command::new(cargo)
            .args(["build", "-p", "turnpike"])
            .current_dir(workspace_root())
            .spawn()
            .expect("run cargo build -p turnpike");
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "cargo build -p turnpike failed");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("cargo build -p turnpike took too long");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(bin.exists(), "no turnpike binary at {}", bin.display());
    bin
}

/// A running server, stopped by its PID when dropped.
pub struct ServerProcess {
    child: Child,
    pub udp: SocketAddr,
    /// The TCP (and TLS) listener, when the configuration has one.
    pub tcp: Option<SocketAddr>,
    dir: PathBuf,
}

/// A fresh directory under the system's temporary directory for a test's files.
pub fn test_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "turnpike-bench-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl ServerProcess {
    /// Starts turnpike on loopback (free listener port, relay ports `ports`) with the
    /// REST secret `S` and loopback peers allowed.
    pub fn start(tag: &str, ports: &str) -> Self {
        Self::start_with(tag, ports, "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n")
    }

    /// As [`ServerProcess::start`], with `listen` (the `[listen]` table, and `[tls]` if
    /// wanted) instead of a UDP listener only.
    pub fn start_with(tag: &str, ports: &str, listen: &str) -> Self {
        let dir = test_dir(tag);
        let config = format!(
            "{listen}[turn]\nrealm = \"bench\"\nsecrets = [\"S\"]\n\
             [relay]\nips = [\"127.0.0.1\"]\nports = \"{ports}\"\n[peers]\ndangerous_allow_loopback_peers = true\n"
        );
        let path = dir.join("turnserver.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(turnpike_bin())
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start turnpike");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut udp = None;
        let mut tcp = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!("turnpike did not report its listeners in time");
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts[..] {
                ["ready"] => break,
                ["listening", "udp", addr] => udp = Some(addr.parse().unwrap()),
                ["listening", "tcp", addr] => tcp = Some(addr.parse().unwrap()),
                _ => {}
            }
        }
        Self {
            child,
            udp: udp.or(tcp).expect("a listener"),
            tcp,
            dir,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the bench binary with `args`, bounded by `timeout`; returns stdout.
pub fn bench(args: &[&str], timeout: Duration) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnpike-bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start turnpike-bench");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("turnpike-bench {args:?} did not finish in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap();
    assert!(status.success(), "turnpike-bench {args:?} failed: {out}");
    out
}

/// Runs the bench binary with `args` and returns what it did; it must fail.
pub fn bench_fails(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_turnpike-bench"))
        .args(args)
        .output()
        .expect("run turnpike-bench");
    assert!(!out.status.success(), "turnpike-bench {args:?} succeeded");
    out
}
