//! Starting and stopping the real `turnpike` binary for integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod turn_client;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use turnpike_stun::attr::XorMappedAddress;
use turnpike_stun::{Message, MessageType, MessageWriter, TransactionId};

/// A running server, stopped by its PID when dropped.
pub struct ServerProcess {
    child: Child,
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// The admin API's address, if it runs.
    pub admin: Option<SocketAddr>,
    /// The admin token it generated, if it did.
    pub admin_token: Option<String>,
    /// The metrics' address, if they are served.
    pub metrics: Option<SocketAddr>,
    /// The credentials service's address, if it runs.
    pub credentials: Option<SocketAddr>,
    /// The configuration file the server runs on.
    pub config_path: PathBuf,
    /// Its log lines (stderr), also echoed to the test's stderr.
    logs: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "turnpike-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn turnpike_bin() -> &'static str {
    env!("CARGO_BIN_EXE_turnpike")
}

impl ServerProcess {
    /// Writes `config` to a file, starts the binary on it and waits until it prints
    /// its listeners (port 0 in the config picks free ports).
    pub fn start(tag: &str, config: &str) -> Self {
        Self::start_logging(tag, config, "warn")
    }

    /// [`Self::start`] with `RUST_LOG=rust_log` (empty: without `RUST_LOG`, so the
    /// file's `[log] level` decides and can be changed while running).
    pub fn start_logging(tag: &str, config: &str, rust_log: &str) -> Self {
        let dir = TempDir::new(tag);
        let path = dir.0.join("turnserver.toml");
        // Tests run servers side by side: the admin API and metrics take any free
        // loopback port unless the test configures them.
        let mut config = config.to_owned();
        for section in ["admin", "metrics"] {
            if !config.contains(&format!("[{section}]")) {
                config.push_str(&format!("\n[{section}]\nlisten = \"127.0.0.1:0\"\n"));
            }
        }
        std::fs::write(&path, &config).unwrap();
        let mut command = Command::new(turnpike_bin());
        if rust_log.is_empty() {
            command.env_remove("RUST_LOG");
        } else {
            command.env("RUST_LOG", rust_log);
        }
        let mut child = command
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start turnpike");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                sink.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut udp, mut tcp) = (Vec::new(), Vec::new());
        let (mut admin, mut admin_token, mut metrics, mut credentials) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        // The binary prints one line per listener, then "ready".
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("turnpike did not report its listeners in time");
            });
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts[..] {
                ["ready"] => break,
                ["admin", "token", token] => admin_token = Some(token.to_owned()),
                [name @ ("admin" | "metrics" | "credentials"), url] => {
                    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
                    match name {
                        "admin" => admin = Some(addr),
                        "metrics" => metrics = Some(addr),
                        _ => credentials = Some(addr),
                    }
                }
                ["listening", transport, addr] => {
                    let addr: SocketAddr = addr.parse().unwrap();
                    match transport {
                        "udp" => udp.push(addr),
                        "tcp" => tcp.push(addr),
                        other => panic!("unknown transport {other}"),
                    }
                }
                _ => {}
            }
        }
        Self {
            child,
            udp,
            tcp,
            admin,
            admin_token,
            metrics,
            credentials,
            config_path: path,
            logs,
            _dir: dir,
        }
    }

    /// Sends a signal (`HUP`, `USR1`, `USR2`, ...) to the server's PID.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits until a log line contains every one of `needles`; returns it.
    pub fn wait_for_log(&self, needles: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many log lines contain `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM to the PID and waits for a clean exit; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `within` for the process to exit by itself; its exit status, or
    /// `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// A Binding request with FINGERPRINT.
pub fn binding_request(tid: [u8; 12]) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let mut w =
        MessageWriter::new(&mut buf, MessageType::BINDING_REQUEST, TransactionId(tid)).unwrap();
    w.put_fingerprint().unwrap();
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// Checks a Binding success response and returns its XOR-MAPPED-ADDRESS.
pub fn mapped_address(response: &[u8], tid: [u8; 12]) -> SocketAddr {
    let msg = Message::new_checked(response).expect("valid STUN response");
    assert_eq!(msg.message_type(), MessageType::BINDING_SUCCESS);
    assert_eq!(msg.transaction_id(), TransactionId(tid));
    assert_eq!(
        msg.verify_fingerprint(),
        Ok(true),
        "FINGERPRINT echoed and right"
    );
    msg.get::<XorMappedAddress>()
        .unwrap()
        .expect("XOR-MAPPED-ADDRESS")
        .0
}

/// Waits at most `limit` for `child` to exit, else kills it (SIGKILL by its PID): its
/// exit code, `None` if it had to be killed.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `openssl ARGS` in `dir` (test certificates), quietly; panics if it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?}");
}
