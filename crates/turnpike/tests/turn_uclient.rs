//! TURN against coturn's load client: `turnutils_uclient` relays through the server to
//! `turnutils_peer` (an echo peer) with REST credentials, and counts what comes back. Over UDP,
//! TCP (`-t`) and TLS (`-t -S`), to the server on 127.0.0.1, and on `[::1]` asking for IPv6
//! relayed addresses (`-x`) with the echo peer on ::1.
//!
//! uclient's TLS client tries protocol versions at random per connection, older ones included:
//! a server that only speaks TLS 1.2 and 1.3 (turnpike, coturn built on OpenSSL 3) refuses some
//! handshakes (`tls_connect: cannot connect ... handshake failure`) before one succeeds. Those
//! lines are not failures; the verdict is on the loss counts, the exit code, and the versions
//! of the sessions that did connect.
//!
//! The server under test is turnpike by default, coturn's `turnserver` with
//! `TURNPIKE_INTEROP_SERVER=coturn` (the baseline the harness was validated against).

mod common;
mod interop;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use interop::{Bounded, Setup, TestCert, Transport, TurnServer, TurnTarget, run_bounded};

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
    /// `-v`: log each Allocate sent and each response received, and each relayed address.
    verbose: bool,
    /// `-t` for TCP, `-t -S` for TLS (uclient's `-S` alone would be DTLS).
    transport: Transport,
    /// `-x`: ask for an IPv6 relayed address (REQUESTED-ADDRESS-FAMILY).
    ipv6_relay: bool,
    /// Without `-c`: RTP/RTCP pairs, an EVEN-PORT allocation with the R bit on one socket
    /// and one claiming the reserved next port with RESERVATION-TOKEN on a second.
    rtcp_pairs: bool,
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
            transport: Transport::Udp,
            ipv6_relay: false,
            rtcp_pairs: false,
            limit: Duration::from_secs(40),
        }
    }

    /// The load for TCP and TLS: 10 clients at 50 packets/s each over channels, 1 s of
    /// traffic per client, with `-v` to read back the relayed addresses.
    fn stream(transport: Transport, ipv6_relay: bool) -> Self {
        Self {
            clients: 10,
            verbose: true,
            transport,
            ipv6_relay,
            ..Self::acceptance(false)
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
    /// `tls_connect: client session connected with cipher C, method=M`: M of each TLS session.
    tls_sessions: Vec<String>,
    /// `tls_connect: cannot connect`: handshakes refused (uclient then tries another version).
    tls_refused: usize,
    /// With `-v`: `IPv4. Received relay addr: A` / `IPv6. ...`, one per allocation.
    relayed: Vec<SocketAddr>,
    /// `channel bind: error 400 (R)` where R says the number is bound to another peer.
    channel_number_collisions: usize,
    output: String,
}

/// Reason phrases of a 400 to a ChannelBind whose number the allocation already uses for
/// another peer (RFC 8656 §11.2): turnpike's, and coturn's.
const CHANNEL_NUMBER_IN_USE: [&str; 2] = [
    "Channel number bound to another peer",
    "You cannot use the same channel number with different peer",
];

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
            } else if let Some(rest) = line.strip_prefix("channel bind: error 400 (") {
                if CHANNEL_NUMBER_IN_USE.iter().any(|r| rest.starts_with(r)) {
                    r.channel_number_collisions += 1;
                }
            } else if line.contains("Cannot complete Allocation") {
                r.cannot_complete_allocation = true;
            } else if let Some(rest) = line.strip_prefix("tls_connect: ") {
                if let Some((_, method)) = rest.split_once("method=") {
                    r.tls_sessions.push(method.trim().to_owned());
                } else if rest.starts_with("cannot connect") {
                    r.tls_refused += 1;
                }
            } else if let Some((_, addr)) = line.split_once(". Received relay addr: ") {
                // "::1:25928" or "127.0.0.1:25928": the port follows the last colon.
                let parsed = addr.trim().rsplit_once(':').and_then(|(ip, port)| {
                    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
                });
                match parsed {
                    Some(a) => r.relayed.push(a),
                    None => r.error_codes.push(u16::MAX),
                }
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

    /// The transport checks on top of [`UclientReport::zero_loss`], for a `-v` run: each
    /// allocation (two per client) got a relayed address of the asked family in the server's
    /// range; over TLS, each connection that carried TURN ran TLS 1.2 or 1.3.
    fn transport_ok(&self, opts: &UclientOptions, target: &TurnTarget) -> Result<(), String> {
        let mut bad = Vec::new();
        let allocations = 2 * opts.clients as usize;
        let (a, b) = target.relay_ports;
        if self.relayed.len() < allocations {
            bad.push(format!(
                "{} relayed addresses reported, want {allocations}",
                self.relayed.len()
            ));
        }
        let want_ip: IpAddr = if opts.ipv6_relay {
            "::1".parse().unwrap()
        } else {
            "127.0.0.1".parse().unwrap()
        };
        let odd: Vec<&SocketAddr> = self
            .relayed
            .iter()
            .filter(|r| r.ip() != want_ip || !(a..=b).contains(&r.port()))
            .collect();
        if !odd.is_empty() {
            bad.push(format!(
                "relayed addresses not {want_ip} in {a}-{b}: {odd:?}"
            ));
        }
        match opts.transport {
            Transport::Tls => {
                if self.tls_sessions.len() < allocations {
                    bad.push(format!(
                        "{} TLS sessions, want at least {allocations}",
                        self.tls_sessions.len()
                    ));
                }
                let old: Vec<&String> = self
                    .tls_sessions
                    .iter()
                    .filter(|m| !matches!(m.as_str(), "TLSv1.2" | "TLSv1.3"))
                    .collect();
                if !old.is_empty() {
                    bad.push(format!("TLS sessions below 1.2: {old:?}"));
                }
            }
            Transport::Udp | Transport::Tcp => {
                if !self.tls_sessions.is_empty() || self.tls_refused != 0 {
                    bad.push("TLS without -S".to_owned());
                }
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    /// TLS versions of the sessions, counted: `TLSv1.2 x9, TLSv1.3 x12`.
    fn tls_summary(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for m in &self.tls_sessions {
            match counts.iter_mut().find(|(k, _)| k == m) {
                Some((_, n)) => *n += 1,
                None => counts.push((m, 1)),
            }
        }
        counts.sort();
        let list: Vec<String> = counts.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        format!(
            "sessions [{}], {} handshakes refused",
            list.join(", "),
            self.tls_refused
        )
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

/// coturn's echo peer on IP:PORT (127.0.0.1 or ::1), stopped by its PID on drop.
struct EchoPeer {
    child: Child,
    ip: IpAddr,
    port: u16,
}

impl EchoPeer {
    fn start() -> Self {
        Self::start_on("127.0.0.1".parse().unwrap())
    }

    fn start_on(ip: IpAddr) -> Self {
        let port = interop::free_udp_port_on(ip);
        let child = Command::new("turnutils_peer")
            .args(["-L", &ip.to_string(), "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnutils_peer is installed (Debian package coturn)");
        let peer = Self { child, ip, port };
        peer.wait_ready(Duration::from_secs(5));
        peer
    }

    /// Waits until the peer echoes a datagram.
    fn wait_ready(&self, limit: Duration) {
        assert!(
            self.echoes(limit),
            "turnutils_peer on {} did not echo within {limit:?}",
            self.addr()
        );
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    fn echoes(&self, limit: Duration) -> bool {
        let to = self.addr();
        let socket = UdpSocket::bind(interop::any_loopback_for(to)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
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
            "peer {} (pid {}): alive {alive}, echoes {echoes}; sockets on its port:\n{holders}",
            self.addr(),
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
/// `peer`, and parses what it reports. Server-agnostic: the realm comes from the server's
/// challenge.
fn run_uclient(
    target: &TurnTarget,
    user: &str,
    pass: &str,
    peer: SocketAddr,
    opts: &UclientOptions,
) -> UclientReport {
    let run = || {
        let cmd = uclient_command(target, user, pass, peer, opts);
        UclientReport::parse(&run_bounded(cmd, opts.limit))
    };
    let mut report = run();
    // uclient draws each channel number at random from 0x4000..=0x7FFF and exits on any
    // error; now and then (1 in 16,384 per client) the second number of a client equals
    // its first, bound to the peer's port + 1, and the server must refuse it with 400
    // (RFC 8656 §11.2). That is uclient's dice, not the relay: run it again, at most
    // twice, but only when the reason phrase names exactly that collision.
    for _ in 0..2 {
        if report.channel_number_collisions == 0 {
            break;
        }
        eprintln!("uclient drew a channel number it had already bound to another peer; again");
        report = run();
    }
    report
}

/// The `turnutils_uclient` command line for `opts`.
fn uclient_command(
    target: &TurnTarget,
    user: &str,
    pass: &str,
    peer: SocketAddr,
    opts: &UclientOptions,
) -> Command {
    let server = match opts.transport {
        Transport::Udp => target.addr,
        Transport::Tcp | Transport::Tls => target
            .tcp
            .unwrap_or_else(|| panic!("{:?} asked of a server without TCP", opts.transport)),
    };
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(["-u", user, "-w", pass])
        .args(["-e", &peer.ip().to_string(), "-r", &peer.port().to_string()])
        .args(["-p", &server.port().to_string()])
        .args(["-m", &opts.clients.to_string()])
        .args(["-n", &opts.messages.to_string()])
        .args(["-l", &opts.payload.to_string()])
        .args(["-z", &opts.interval_ms.to_string()]);
    if !opts.rtcp_pairs {
        cmd.arg("-c");
    }
    if opts.send_indications {
        cmd.arg("-s");
    }
    if opts.verbose {
        cmd.arg("-v");
    }
    match opts.transport {
        Transport::Udp => {}
        Transport::Tcp => {
            cmd.arg("-t");
        }
        Transport::Tls => {
            cmd.args(["-t", "-S"]);
        }
    }
    if opts.ipv6_relay {
        cmd.arg("-x");
    }
    cmd.arg(server.ip().to_string());
    cmd
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
    let report = run_uclient(target, &user, &pass, peer.addr(), &opts);
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
    let report = run_uclient(target, user, pass, peer.addr(), &opts);
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

/// One 20-client load at a time: the two load tests never share the machine with each other,
/// nor with the lighter stream loads (which hold it shared: five of 10 clients x 50 packets/s
/// at once are 2,500 packets/s in all, a fraction of what either server relays without loss).
static LOAD: RwLock<()> = RwLock::new(());

fn zero_loss_test(tag: &str, relay_ports: (u16, u16), send_indications: bool) {
    let _one_load = LOAD.write().unwrap_or_else(|e| e.into_inner());
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

/// Only a 400 whose reason names the channel-number collision may send uclient round again;
/// any other ChannelBind error stays a failure.
#[test]
fn only_a_channel_number_collision_counts_as_uclients_dice() {
    let run = |lines: &[&str]| {
        UclientReport::parse(&Bounded {
            status: None,
            stdout: lines.join("\n"),
            stderr: String::new(),
            timed_out: false,
            elapsed: Duration::ZERO,
        })
    };
    let collisions = run(&[
        "0: : channel bind: error 400 (Channel number bound to another peer)",
        "0: : channel bind: error 400 (You cannot use the same channel number with different peer)",
    ]);
    assert_eq!(collisions.channel_number_collisions, 2);
    for other in [
        "0: : channel bind: error 400 (Bad Request)",
        "0: : channel bind: error 400 (Peer bound to another channel number)",
        "0: : channel bind: error 403 (Forbidden)",
        "0: : error 400 (Channel number bound to another peer)",
    ] {
        assert_eq!(run(&[other]).channel_number_collisions, 0, "{other}");
    }
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

/// The stream load (10 clients x 50 packets/s over channels) over TCP or TLS, to the server on
/// 127.0.0.1, or on [::1] with IPv6 relays (`-x`) to an echo peer on ::1: zero loss, exit 0,
/// every relayed address of the asked family in the range, TLS 1.2/1.3 sessions only.
fn stream_test(tag: &str, relay_ports: (u16, u16), transport: Transport, ipv6: bool) {
    let _light_load = LOAD.read().unwrap_or_else(|e| e.into_inner());
    let cert = (transport == Transport::Tls).then(|| TestCert::generate(tag));
    let setup = Setup {
        ipv6,
        tcp: transport != Transport::Udp,
        tls: cert.as_ref().map(|c| c.files.clone()),
    };
    let server = TurnServer::start_with(tag, &format!("{tag}-secret"), relay_ports, &setup);
    let target = &server.target;
    let opts = UclientOptions::stream(transport, ipv6);
    let peer_ip: IpAddr = if ipv6 { "::1" } else { "127.0.0.1" }.parse().unwrap();
    let mut peer = EchoPeer::start_on(peer_ip);
    let (user, pass) =
        interop::rest_credentials(&target.secret, "uclient", Duration::from_secs(3600));
    let report = run_uclient(target, &user, &pass, peer.addr(), &opts);
    let expected = u64::from(opts.clients) * u64::from(opts.messages);
    let verdict = report
        .zero_loss(expected)
        .and_then(|()| report.transport_ok(&opts, target));
    match verdict {
        Ok(()) => eprintln!(
            "{:?} {tag}: {:?} to {}, {} clients x {} pkt/s: sent {:?} received {:?} lost {:?} \
             dropped {:?}, {} relayed addresses like {:?}, TLS {}, transmit {:?} s, run {:.1} s",
            server.kind,
            opts.transport,
            target.tcp.unwrap_or(target.addr),
            opts.clients,
            opts.rate_per_client(),
            report.sent,
            report.received,
            report.lost,
            report.send_dropped,
            report.relayed.len(),
            report.relayed.first(),
            report.tls_summary(),
            report.transmit_secs,
            report.elapsed.as_secs_f64()
        ),
        Err(why) => {
            let why = format!("{why}\n{}", peer.diagnose());
            fail(&server, &report, &why)
        }
    }
}

#[test]
fn uclient_10_clients_over_tcp_lose_nothing() {
    stream_test("uclient-tcp", (25600, 25699), Transport::Tcp, false);
}

#[test]
fn uclient_10_clients_over_tls_lose_nothing() {
    stream_test("uclient-tls", (25700, 25799), Transport::Tls, false);
}

#[test]
fn uclient_over_udp_to_ipv6_server_with_ipv6_relays_loses_nothing() {
    stream_test("uclient-udp6", (25800, 25899), Transport::Udp, true);
}

#[test]
fn uclient_over_tcp_to_ipv6_server_with_ipv6_relays_loses_nothing() {
    stream_test("uclient-tcp6", (25900, 25999), Transport::Tcp, true);
}

#[test]
fn uclient_over_tls_to_ipv6_server_with_ipv6_relays_loses_nothing() {
    stream_test("uclient-tls6", (26000, 26099), Transport::Tls, true);
}

/// RTP/RTCP pairs (uclient without `-c`): each client's RTCP socket claims the port its
/// RTP allocation reserved (EVEN-PORT R, RESERVATION-TOKEN, RFC 8656 §7.2), with the
/// default number of workers. The kernel hashes the two sockets to workers independently,
/// so over 3 runs of 10 clients many claims reach another worker than the reservation's:
/// every one must succeed and every packet come back.
#[test]
fn uclient_rtp_rtcp_pairs_claim_their_reservations_on_any_worker() {
    let _light_load = LOAD.read().unwrap_or_else(|e| e.into_inner());
    let tag = "uclient-rtcp";
    let server = TurnServer::start(tag, &format!("{tag}-secret"), (27100, 27299));
    let target = &server.target;
    let opts = UclientOptions {
        clients: 10,
        rtcp_pairs: true,
        verbose: true,
        ..UclientOptions::acceptance(false)
    };
    for round in 0..3 {
        let mut peer = EchoPeer::start();
        let (user, pass) =
            interop::rest_credentials(&target.secret, "uclient", Duration::from_secs(3600));
        let report = run_uclient(target, &user, &pass, peer.addr(), &opts);
        let expected = u64::from(opts.clients) * u64::from(opts.messages);
        if let Err(why) = report.zero_loss(expected) {
            let why = format!("round {round}: {why}\n{}", peer.diagnose());
            fail(&server, &report, &why);
        }
        eprintln!(
            "{:?} {tag} round {round}: {} clients with RTP/RTCP pairs: sent {:?} received {:?}",
            server.kind, opts.clients, report.sent, report.received
        );
    }
}
