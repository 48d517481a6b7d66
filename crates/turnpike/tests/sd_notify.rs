//! The systemd notification protocol against the real binary: the test binds the unix
//! datagram socket systemd would (`NOTIFY_SOCKET`), sets a short `WATCHDOG_USEC`, and
//! reads what the server says: READY=1 only once its listeners answer, WATCHDOG=1 again
//! and again, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 after SIGTERM.
//! Without `NOTIFY_SOCKET` the binary sends nothing and runs as before (every other test).
//!
//! Ports: UDP and TCP 30100-30129 (nothing else uses them).

mod common;

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, binding_request, mapped_address, turnpike_bin};

/// The watchdog interval handed to the server: pings are due every 200 ms.
const WATCHDOG_USEC: u64 = 400_000;

const CONFIG: &str = "[listen]\nudp = [\"127.0.0.1:30100\"]\ntcp = [\"127.0.0.1:30100\"]\n\
     [turn]\nsecrets = [\"sd-notify-secret\"]\n\
     [relay]\nips = [\"127.0.0.1\"]\nports = \"30110-30119\"\n\
     [admin]\nlisten = \"127.0.0.1:30101\"\ntoken = \"sd-notify-admin-token\"\n\
     [metrics]\nlisten = \"127.0.0.1:30102\"\n";

/// The server under test, killed by its PID if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What the server sent, one datagram at a time.
struct Notifications {
    socket: UnixDatagram,
    /// Every datagram read so far, in order.
    seen: Vec<String>,
}

impl Notifications {
    /// Reads datagrams until one has the line `line`; panics after `within`.
    fn wait_for(&mut self, line: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {line:?} within {within:?}; seen: {:?}",
                self.seen
            );
            self.socket.set_read_timeout(Some(left)).unwrap();
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(datagram.clone());
            if datagram.lines().any(|l| l == line) {
                return datagram;
            }
        }
    }

    /// Reads every datagram that comes within `window`.
    fn collect(&mut self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        {
            self.socket.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        self.seen.extend(got.iter().cloned());
        got
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// One STUN Binding round trip to the UDP listener.
fn binding_answers() -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let tid = *b"sd-notify-tx";
    socket
        .send_to(&binding_request(tid), "127.0.0.1:30100")
        .unwrap();
    let mut buf = [0u8; 1500];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => mapped_address(&buf[..n], tid) == socket.local_addr().unwrap(),
        Err(_) => false,
    }
}

#[test]
fn ready_watchdog_reload_and_stopping_reach_the_notify_socket() {
    let dir = TempDir::new("sd-notify");
    let config = dir.0.join("turnserver.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let socket_path = dir.0.join("notify.sock");
    let mut notes = Notifications {
        socket: UnixDatagram::bind(&socket_path).unwrap(),
        seen: Vec::new(),
    };
    let started = Instant::now();
    let child = Command::new(turnpike_bin())
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start turnpike");
    let mut server = Server(child);

    // READY=1 comes with a STATUS= line, and only once the listeners answer.
    let ready = notes.wait_for("READY=1", Duration::from_secs(10));
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=serving on")
            && l.contains("udp 127.0.0.1:30100")
            && l.contains("tcp 127.0.0.1:30100")),
        "READY=1 without the listeners' status: {ready:?}"
    );
    assert!(binding_answers(), "READY=1 sent before UDP answers");
    eprintln!("READY=1 after {:?}", started.elapsed());

    // WATCHDOG=1 every half interval: about 10 in 2 s; at least 6 leaves room for a
    // slow machine and still fails if the pings stop or come once per interval.
    let window = Duration::from_secs(2);
    let pings = notes
        .collect(window)
        .iter()
        .filter(|d| d.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    eprintln!("{pings} WATCHDOG=1 in {window:?}");
    assert!(pings >= 6, "only {pings} WATCHDOG=1 in {window:?}");

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC) and then READY=1 again.
    signal(&server.0, "HUP");
    let reloading = notes.wait_for("RELOADING=1", Duration::from_secs(5));
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")
            && l["MONOTONIC_USEC=".len()..].parse::<u64>().is_ok()),
        "RELOADING=1 without MONOTONIC_USEC: {reloading:?}"
    );
    let reloaded = notes.wait_for("READY=1", Duration::from_secs(5));
    assert!(
        reloaded.contains("STATUS=serving; configuration reloaded"),
        "{reloaded:?}"
    );
    // Still serving, and the watchdog still fed, after the reload.
    assert!(binding_answers(), "no Binding answer after the reload");
    notes.wait_for("WATCHDOG=1", Duration::from_secs(2));

    // SIGTERM: STOPPING=1, then a clean exit.
    signal(&server.0, "TERM");
    notes.wait_for("STOPPING=1", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_watchdog_for_another_pid_is_not_fed() {
    // systemd sets WATCHDOG_PID to the main process; a child that inherited the
    // variables (another PID) must not ping on its behalf (sd_watchdog_enabled(3)).
    let dir = TempDir::new("sd-notify-pid");
    let config = dir.0.join("turnserver.toml");
    let other = CONFIG
        .replace("30100", "30103")
        .replace("30101", "30104")
        .replace("30102", "30105")
        .replace("30110-30119", "30120-30129");
    std::fs::write(&config, other).unwrap();
    let socket_path = dir.0.join("notify.sock");
    let mut notes = Notifications {
        socket: UnixDatagram::bind(&socket_path).unwrap(),
        seen: Vec::new(),
    };
    let child = Command::new(turnpike_bin())
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
        // PID 1 is never this process.
        .env("WATCHDOG_PID", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start turnpike");
    let server = Server(child);
    notes.wait_for("READY=1", Duration::from_secs(10));
    let got = notes.collect(Duration::from_secs(1));
    assert!(
        got.iter().all(|d| !d.lines().any(|l| l == "WATCHDOG=1")),
        "pinged for another PID: {got:?}"
    );
    signal(&server.0, "TERM");
    notes.wait_for("STOPPING=1", Duration::from_secs(5));
}
