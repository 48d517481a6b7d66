//! TURN over UDP against coturn's load client: `turnutils_uclient` relays through the server to
//! `turnutils_peer` (an echo peer) with REST credentials, and counts what comes back.
//!
//! The server under test is turnpike by default, coturn's `turnserver` with
//! `TURNPIKE_INTEROP_SERVER=coturn` (the baseline the harness was validated against).

mod common;
mod interop;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use interop::{Bounded, TurnServer, TurnTarget, run_bounded};

/// How one `turnutils_uclient` run is shaped.
#[derive(Clone, Debug)]
struct UclientOptions {
    /// `-m`: concurrent clients (uclient makes two allocations per client).
    clients: u32,
    /// `-n`: messages each client sends.
    messages: u32,
    /// `-z`: per-client packet interval in ms; 20 ms is 50 packets/s per client.
    interval_ms: u32,
    /// `-l`: payload bytes per message.
    payload: u32,
    /// `-s`: Send indications instead of ChannelData.
    send_indications: bool,
    /// `-v`: log each Allocate sent and each response received.
    verbose: bool,
    /// Hard limit on the run; uclient waits up to 10 s for missing echoes before it gives up.
    limit: Duration,
}

impl UclientOptions {
    /// The acceptance load: 20 clients at 50 packets/s each, 1 s of traffic per client.
    fn acceptance(send_indications: bool) -> Self {
        Self {
            clients: 20,
            messages: 50,
            interval_ms: 20,
            payload: 100,
            send_indications,
            verbose: false,
            limit: Duration::from_secs(40),
        }
    }

    /// Packets per second each client offers.
    fn rate_per_client(&self) -> f64 {
        1000.0 / f64::from(self.interval_ms)
    }
}

/// What `turnutils_uclient` reported, parsed from its output.
#[derive(Clone, Debug, Default)]
struct UclientReport {
    exit_code: Option<i32>,
    timed_out: bool,
    elapsed: Duration,
    /// `tot_send_msgs` / `tot_recv_msgs` of the final `start_mclient:` line.
    sent: Option<u64>,
    received: Option<u64>,
    /// `Total lost packets N`, and `total send dropped N` (sends that failed locally).
    lost: Option<u64>,
    send_dropped: Option<u64>,
    /// `Total transmit time is N` (whole seconds, includes uclient's 1–6 s random start).
    transmit_secs: Option<u64>,
    /// With `-v`: Allocate requests sent, and responses to them received.
    allocates_sent: usize,
    allocate_responses: usize,
    /// `error N (reason)` lines: error responses that were not a 401/438 challenge.
    error_codes: Vec<u16>,
    /// `ERROR: Cannot complete Allocation`: every attempt was challenged or failed.
    cannot_complete_allocation: bool,
    /// Whether any traffic phase started (`start_mclient:` lines).
    traffic_started: bool,
    output: String,
}

impl UclientReport {
    fn parse(run: &Bounded) -> Self {
        let output = format!("{}{}", run.stdout, run.stderr);
        let mut r = Self {
            exit_code: run.code(),
            timed_out: run.timed_out,
            elapsed: run.elapsed,
            ..Self::default()
        };
        for raw in output.lines() {
            // Lines read "<secs>: : <message>".
            let line = raw.split_once(": : ").map_or(raw, |(_, m)| m).trim();
            if let Some(rest) = line.strip_prefix("start_mclient: ") {
                r.traffic_started = true;
                if !rest.starts_with("msz=") {
                    if let (Some(s), Some(v)) =
                        (field(rest, "tot_send_msgs="), field(rest, "tot_recv_msgs="))
                    {
                        r.sent = Some(s);
                        r.received = Some(v);
                    }
                }
            } else if let Some(rest) = line.strip_prefix("Total lost packets ") {
                r.lost = first_number(rest);
                r.send_dropped = rest
                    .split_once("total send dropped ")
                    .and_then(|(_, d)| first_number(d));
            } else if let Some(rest) = line.strip_prefix("Total transmit time is ") {
                r.transmit_secs = first_number(rest);
            } else if line == "allocate sent" {
                r.allocates_sent += 1;
            } else if line.starts_with("allocate response received") {
                r.allocate_responses += 1;
            } else if let Some(rest) = line.strip_prefix("error ") {
                if let Some(code) = first_number(rest) {
                    r.error_codes.push(u16::try_from(code).unwrap_or(u16::MAX));
                }
            } else if line.contains("Cannot complete Allocation") {
                r.cannot_complete_allocation = true;
            }
        }
        r.output = output;
        r
    }

    /// The relay worked: uclient exited 0 having sent `expected` packets, all echoed back.
    fn zero_loss(&self, expected: u64) -> Result<(), String> {
        let mut bad = Vec::new();
        if self.timed_out {
            bad.push("timed out".to_owned());
        }
        if self.exit_code != Some(0) {
            bad.push(format!("exit code {:?}", self.exit_code));
        }
        if self.sent != Some(expected) {
            bad.push(format!("sent {:?}, want {expected}", self.sent));
        }
        if self.received != self.sent {
            bad.push(format!("received {:?} of {:?}", self.received, self.sent));
        }
        if self.lost != Some(0) {
            bad.push(format!("lost {:?}", self.lost));
        }
        if self.send_dropped != Some(0) {
            bad.push(format!("send dropped {:?}", self.send_dropped));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    /// Authentication was refused the way a TURN server must: every Allocate (uclient tries 32
    /// times, see `clnet_allocate` in coturn's startuclient.c) was answered with a 401/438
    /// challenge, never another error, and uclient gave up with exit code 255 before any
    /// traffic. Needs a `-v` run.
    fn refused_by_challenge(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        if self.timed_out {
            bad.push("timed out (server stopped answering?)".to_owned());
        }
        if self.exit_code != Some(255) {
            bad.push(format!("exit code {:?}, want 255", self.exit_code));
        }
        if !self.cannot_complete_allocation {
            bad.push("no 'Cannot complete Allocation'".to_owned());
        }
        if !self.error_codes.is_empty() {
            bad.push(format!("non-challenge errors {:?}", self.error_codes));
        }
        if self.allocates_sent != 32 || self.allocate_responses != 32 {
            bad.push(format!(
                "{} Allocates sent, {} answered; want 32 and 32",
                self.allocates_sent, self.allocate_responses
            ));
        }
        if self.traffic_started || self.sent.is_some() {
            bad.push("traffic started".to_owned());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

fn field(s: &str, key: &str) -> Option<u64> {
    first_number(&s[s.find(key)? + key.len()..])
}

fn first_number(s: &str) -> Option<u64> {
    let digits: String = s
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// coturn's echo peer on 127.0.0.1:PORT, stopped by its PID on drop.
struct EchoPeer {
    child: Child,
    port: u16,
}

impl EchoPeer {
    fn start() -> Self {
        let port = interop::free_udp_port();
        let child = Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnutils_peer is installed (Debian package coturn)");
        let peer = Self { child, port };
        peer.wait_ready(Duration::from_secs(5));
        peer
    }

    /// Waits until the peer echoes a datagram.
    fn wait_ready(&self, limit: Duration) {
        assert!(
            self.echoes(limit),
            "turnutils_peer on 127.0.0.1:{} did not echo within {limit:?}",
            self.port
        );
    }

    fn echoes(&self, limit: Duration) -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let to = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            let _ = socket.send_to(b"ping", to);
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                if from == to && &buf[..n] == b"ping" {
                    return true;
                }
            }
        }
        false
    }

    /// For failure messages: is the peer alive, does it still echo, who holds its port.
    fn diagnose(&mut self) -> String {
        let alive = matches!(self.child.try_wait(), Ok(None));
        let echoes = alive && self.echoes(Duration::from_secs(1));
        let holders = Command::new("ss")
            .args(["-uanp", &format!("sport = :{}", self.port)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|e| format!("ss: {e}"));
        format!(
            "peer 127.0.0.1:{} (pid {}): alive {alive}, echoes {echoes}; sockets on its port:\n{holders}",
            self.port,
            self.child.id()
        )
    }
}

impl Drop for EchoPeer {
    fn drop(&mut self) {
        interop::terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// Runs `turnutils_uclient` against `target` with credentials `(user, pass)`, relaying to
/// `peer_port`, and parses what it reports. Server-agnostic: the realm comes from the server's
/// challenge.
fn run_uclient(
    target: &TurnTarget,
    user: &str,
    pass: &str,
    peer_port: u16,
    opts: &UclientOptions,
) -> UclientReport {
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(["-u", user, "-w", pass])
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &target.addr.port().to_string()])
        .args(["-m", &opts.clients.to_string()])
        .args(["-n", &opts.messages.to_string()])
        .args(["-l", &opts.payload.to_string()])
        .args(["-z", &opts.interval_ms.to_string()])
        .arg("-c");
    if opts.send_indications {
        cmd.arg("-s");
    }
    if opts.verbose {
        cmd.arg("-v");
    }
    cmd.arg(target.addr.ip().to_string());
    UclientReport::parse(&run_bounded(cmd, opts.limit))
}

/// The acceptance check: REST credentials from the server's secret, 20 clients at 50 packets/s,
/// every packet echoed back through the relay. Returns uclient's figures and the verdict.
fn check_zero_loss(
    target: &TurnTarget,
    send_indications: bool,
) -> (UclientReport, Result<(), String>) {
    let mut peer = EchoPeer::start();
    let (user, pass) =
        interop::rest_credentials(&target.secret, "uclient", Duration::from_secs(3600));
    let opts = UclientOptions::acceptance(send_indications);
    let report = run_uclient(target, &user, &pass, peer.port, &opts);
    let expected = u64::from(opts.clients) * u64::from(opts.messages);
    let verdict = report.zero_loss(expected).map_err(|why| {
        let server = match interop::wait_for_stun(target.addr, Duration::from_secs(1)) {
            Ok(_) => "server still answers STUN".to_owned(),
            Err(e) => format!("server no longer answers STUN: {e}"),
        };
        format!("{why}\n{}\n{server}", peer.diagnose())
    });
    drop(peer);
    (report, verdict)
}

/// The refusal check: `(user, pass)` are bad, uclient must be refused by 401 challenges.
/// Returns uclient's figures and the verdict.
fn check_refused(
    target: &TurnTarget,
    user: &str,
    pass: &str,
) -> (UclientReport, Result<(), String>) {
    let peer = EchoPeer::start();
    let opts = UclientOptions {
        verbose: true,
        limit: Duration::from_secs(15),
        ..UclientOptions::acceptance(false)
    };
    let report = run_uclient(target, user, pass, peer.port, &opts);
    let verdict = report.refused_by_challenge();
    (report, verdict)
}

fn fail(server: &TurnServer, report: &UclientReport, why: &str) -> ! {
    let tail: Vec<&str> = report.output.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    panic!(
        "{:?} at {}: {why}\n--- uclient (last lines) ---\n{}\n--- server log (last lines) ---\n{}",
        server.kind,
        server.target.addr,
        tail.join("\n"),
        server.log_tail(30)
    );
}

/// One 20-client load at a time: the two load tests never share the machine with each other.
static LOAD: Mutex<()> = Mutex::new(());

fn zero_loss_test(tag: &str, relay_ports: (u16, u16), send_indications: bool) {
    let _one_load = LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let server = TurnServer::start(tag, &format!("{tag}-secret"), relay_ports);
    let opts = UclientOptions::acceptance(send_indications);
    match check_zero_loss(&server.target, send_indications) {
        (r, Ok(())) => eprintln!(
            "{:?} {tag}: {} clients x {} pkt/s: sent {:?} received {:?} lost {:?} dropped {:?}, \
             transmit {:?} s, run {:.1} s",
            server.kind,
            opts.clients,
            opts.rate_per_client(),
            r.sent,
            r.received,
            r.lost,
            r.send_dropped,
            r.transmit_secs,
            r.elapsed.as_secs_f64()
        ),
        (r, Err(why)) => fail(&server, &r, &why),
    }
}

#[test]
fn helpers_compute_rest_credentials_and_read_json() {
    interop::self_check();
}

#[test]
fn an_allocate_without_credentials_is_challenged_with_the_realm() {
    let server = TurnServer::start("challenge", "right-secret", (24600, 24699));
    let got = interop::unauthenticated_allocate(server.target.addr)
        .unwrap_or_else(|e| panic!("{:?}: {e}", server.kind));
    assert_eq!(got.code, Some(401), "{:?}: {got:?}", server.kind);
    assert_eq!(got.realm.as_deref(), Some(server.target.realm.as_str()));
    assert!(
        got.nonce.as_ref().is_some_and(|n| !n.is_empty()),
        "{:?}: no NONCE in {got:?}",
        server.kind
    );
    eprintln!("{:?} challenge: {got:?}", server.kind);
}

#[test]
fn uclient_20_clients_over_channels_lose_nothing() {
    zero_loss_test("uclient-channels", (24000, 24099), false);
}

#[test]
fn uclient_20_clients_with_send_indications_lose_nothing() {
    zero_loss_test("uclient-send", (24100, 24199), true);
}

#[test]
fn uclient_with_a_wrong_secret_is_refused() {
    let server = TurnServer::start("uclient-wrong", "right-secret", (24200, 24299));
    let (user, pass) =
        interop::rest_credentials("wrong-secret", "uclient", Duration::from_secs(3600));
    match check_refused(&server.target, &user, &pass) {
        (r, Ok(())) => eprintln!(
            "{:?} wrong secret: exit {:?}, {} Allocates all challenged, {:.2} s",
            server.kind,
            r.exit_code,
            r.allocate_responses,
            r.elapsed.as_secs_f64()
        ),
        (r, Err(why)) => fail(&server, &r, &why),
    }
}

#[test]
fn uclient_with_an_expired_rest_username_is_refused() {
    let server = TurnServer::start("uclient-expired", "right-secret", (24300, 24399));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Signed with the right secret, but the expiry is a minute ago.
    let (user, pass) = interop::rest_credentials_at("right-secret", "uclient", now - 60);
    match check_refused(&server.target, &user, &pass) {
        (r, Ok(())) => eprintln!(
            "{:?} expired username: exit {:?}, {} Allocates all challenged, {:.2} s",
            server.kind,
            r.exit_code,
            r.allocate_responses,
            r.elapsed.as_secs_f64()
        ),
        (r, Err(why)) => fail(&server, &r, &why),
    }
}
