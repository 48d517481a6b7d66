//! Attacks on TCP and TLS connections, against the real binary (issue 16):
//!
//! - slowloris: a frame that never completes (a header, then one byte a second) is closed
//!   by the idle timeout, which counts complete frames, not bytes; with a long idle timeout,
//!   by the per-frame bound (`handshake_timeout_secs`). A client that sends a complete
//!   Binding every second keeps its connection past the idle timeout;
//! - pipelining: 2,000 Bindings written in one go on one connection get 2,000 answers, in
//!   order, over TCP and over TLS, read fast or slowly (RFC 8489 §6.2.2: TCP clients do not
//!   retransmit, so a dropped answer is lost for good);
//! - a client that never reads: the server keeps answering others at once, its memory grows
//!   by a bounded amount, and the write timeout ends the connection;
//! - relayed data to a TCP client that does not read is dropped and counted
//!   (`turnpike_dropped_packets_total{reason="queue_full"}`), and its connection still
//!   answers once it reads again.
//!
//! Listeners on port 0 (loopback), relay ports 29000-29099; every loop is bounded in count
//! and time, and every server is stopped by its PID.

mod common;
#[path = "support/http.rs"]
mod http;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ServerProcess, TempDir, binding_request, mapped_address};
use rustls::ClientConnection;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use turnpike_bench::TurnClient;
use turnpike_bench::client::{Credentials, TlsSettings, Transport};
use turnpike_stun::framing::{Framing, next_frame};

const SECRET: &str = "tcp-attacks-secret";
/// Requests pipelined on one connection.
const PIPELINED: usize = 2_000;

/// A TCP-only server (plain TCP and, with `tls`, TLS on the same port).
fn config(idle_secs: u64, frame_secs: u64, extra: &str) -> String {
    format!(
        "[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n[turn]\nrealm = \"attacks.test\"\n\
         secrets = [\"{SECRET}\"]\n[tcp]\nidle_timeout_secs = {idle_secs}\n\
         handshake_timeout_secs = {frame_secs}\n{extra}"
    )
}

/// A transaction ID that names request `n` (and never starts a byte with a pattern).
fn tid(n: usize, tag: u8) -> [u8; 12] {
    let mut t = [tag; 12];
    t[..8].copy_from_slice(&(n as u64).to_be_bytes());
    t
}

/// A connection from 127.0.0.1, with a small receive buffer when asked (so that a slow
/// reader pushes back on the server sooner).
fn connect(addr: SocketAddr, recv_buffer: Option<usize>) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket
        .connect_timeout(&SockAddr::from(addr), Duration::from_secs(3))
        .unwrap();
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Whether the server has closed `stream` (EOF or reset), looking without waiting.
fn closed_now(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut b = [0u8; 256];
    let mut reader = stream;
    let closed = loop {
        match reader.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Sends a Binding and reads its answer within `within`; the time it took.
fn binding_round_trip(stream: &mut TcpStream, n: usize, within: Duration) -> Duration {
    let start = Instant::now();
    stream.write_all(&binding_request(tid(n, 0xB1))).unwrap();
    let mut pending = Vec::new();
    loop {
        if let Framing::Frame(f) = next_frame(&pending) {
            let answer: Vec<u8> = pending.drain(..f.len()).collect();
            assert_eq!(
                mapped_address(&answer, tid(n, 0xB1)),
                stream.local_addr().unwrap()
            );
            return start.elapsed();
        }
        let left = within.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "Binding {n}: no answer within {within:?}");
        stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 512];
        match stream.read(&mut chunk) {
            Ok(0) => panic!("Binding {n}: connection closed by the server"),
            Ok(k) => pending.extend_from_slice(&chunk[..k]),
            Err(e) => panic!("Binding {n}: no answer within {within:?}: {e}"),
        }
    }
}

/// Dribbles a frame that never completes, one byte per `every`, on each of `loris`, while
/// `good` sends a complete Binding as often; returns when each attacker was seen closed
/// (after the connection opened), looking for at most `watch`.
fn dribble(
    loris: &mut [(TcpStream, Instant)],
    good: &mut TcpStream,
    every: Duration,
    watch: Duration,
) -> Vec<Option<Duration>> {
    let start = Instant::now();
    let mut closed: Vec<Option<Duration>> = vec![None; loris.len()];
    let mut tick = 0;
    while start.elapsed() < watch {
        for ((stream, opened), seen) in loris.iter_mut().zip(closed.iter_mut()) {
            if seen.is_some() {
                continue;
            }
            // A write may still succeed on a connection the server has just closed; the
            // read after it tells.
            if stream.write_all(&[0x55]).is_err() || closed_now(stream) {
                *seen = Some(opened.elapsed());
            }
        }
        binding_round_trip(good, tick, Duration::from_secs(1));
        tick += 1;
        std::thread::sleep((start + every * tick as u32).saturating_duration_since(Instant::now()));
    }
    closed
}

#[test]
fn slowloris_is_closed_by_the_idle_timeout_a_binding_a_second_is_kept() {
    // Idle timeout 2 s; the per-frame bound (10 s) is not what closes these.
    let server = ServerProcess::start("tcp-slowloris", &config(2, 10, ""));
    let addr = server.tcp[0];
    let mut good = connect(addr, None);
    // A ChannelData header announcing 65,535 bytes, and a STUN header announcing 80.
    let headers: [&[u8]; 2] = [
        &[0x40, 0x01, 0xFF, 0xFF],
        &[0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xA4, 0x42],
    ];
    let mut loris: Vec<(TcpStream, Instant)> = headers
        .iter()
        .map(|h| {
            let mut s = connect(addr, None);
            let opened = Instant::now();
            s.write_all(h).unwrap();
            (s, opened)
        })
        .collect();
    // 7 s: three and a half idle timeouts.
    let closed = dribble(
        &mut loris,
        &mut good,
        Duration::from_secs(1),
        Duration::from_secs(7),
    );
    eprintln!("slowloris (idle 2 s, a byte a second): closed after {closed:?}");
    for (i, c) in closed.iter().enumerate() {
        let c = c.unwrap_or_else(|| panic!("attacker {i} still open after 7 s"));
        assert!(
            c < Duration::from_secs(6),
            "attacker {i} closed after {c:?}"
        );
        assert!(
            c >= Duration::from_millis(1900),
            "attacker {i} closed after {c:?}, before the idle timeout"
        );
    }
    // The Binding-a-second client was answered every second and is still open.
    assert!(
        !closed_now(&good),
        "the client with complete frames was closed"
    );
    binding_round_trip(&mut good, 1000, Duration::from_secs(1));
    assert!(server.stop().success());
}

#[test]
fn a_frame_that_takes_longer_than_the_frame_bound_is_closed() {
    // Idle timeout 60 s, but a frame must arrive whole within 2 s of its first byte.
    let server = ServerProcess::start("tcp-frame-bound", &config(60, 2, ""));
    let addr = server.tcp[0];
    let mut good = connect(addr, None);
    let mut s = connect(addr, None);
    // A complete Binding first: the connection is past its first-byte wait, and the idle
    // clock has just restarted.
    binding_round_trip(&mut s, 0, Duration::from_secs(1));
    let opened = Instant::now();
    // A STUN header (with the magic cookie, so it frames) announcing 80 bytes.
    s.write_all(&[0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xA4, 0x42])
        .unwrap();
    let mut loris = vec![(s, opened)];
    let closed = dribble(
        &mut loris,
        &mut good,
        Duration::from_millis(500),
        Duration::from_secs(6),
    );
    eprintln!("frame bound 2 s, idle 60 s, a byte per 500 ms: closed after {closed:?}");
    let c = closed[0].expect("the dribbling connection still open after 6 s");
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(4)).contains(&c),
        "closed after {c:?}, not at the 2 s frame bound"
    );
    assert!(
        !closed_now(&good),
        "the client with complete frames was closed"
    );
    assert!(server.stop().success());
}

/// One client connection, plain or TLS, driven without blocking.
trait Wire {
    /// Writes what the connection takes now of `data`; how much it took.
    fn write_some(&mut self, data: &[u8]) -> io::Result<usize>;
    /// Appends what has arrived (at most about `max` bytes); how much. EOF is an error.
    fn read_some(&mut self, into: &mut Vec<u8>, max: usize) -> io::Result<usize>;
}

/// Whether an I/O result is "nothing now".
fn would_block<T>(r: &io::Result<T>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn eof() -> io::Error {
    io::Error::new(ErrorKind::UnexpectedEof, "closed by the server")
}

struct Plain(TcpStream);

impl Wire for Plain {
    fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        let r = self.0.write(data);
        if would_block(&r) { Ok(0) } else { r }
    }

    fn read_some(&mut self, into: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let mut chunk = vec![0u8; max];
        match self.0.read(&mut chunk) {
            Ok(0) => Err(eof()),
            Ok(n) => {
                into.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// rustls over a non-blocking socket.
struct Tls {
    conn: ClientConnection,
    sock: TcpStream,
}

impl Tls {
    fn new(settings: &TlsSettings, sock: TcpStream) -> Self {
        sock.set_nonblocking(true).unwrap();
        let conn = ClientConnection::new(Arc::clone(&settings.config), settings.name.clone())
            .expect("client connection");
        Self { conn, sock }
    }

    /// Sends what rustls has to send, as far as the socket takes it now.
    fn push(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let r = self.conn.write_tls(&mut self.sock);
            if would_block(&r) {
                break;
            }
            r?;
        }
        Ok(())
    }

    /// Completes the handshake (bounded by `within`).
    fn handshake(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.conn.is_handshaking() {
            assert!(
                Instant::now() < deadline,
                "TLS handshake took over {within:?}"
            );
            self.push().unwrap();
            self.read_some(&mut Vec::new(), 4096).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Wire for Tls {
    fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        // rustls takes plaintext up to its buffer limit (64 KiB), then the socket decides.
        let n = self.conn.writer().write(data)?;
        self.push()?;
        Ok(n)
    }

    fn read_some(&mut self, into: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let mut limited = (&self.sock).take(max as u64);
        let r = self.conn.read_tls(&mut limited);
        match r {
            Ok(0) => return Err(eof()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        self.conn
            .process_new_packets()
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        let before = into.len();
        let mut chunk = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => into.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        // Handshake messages and key updates the server may want answered.
        self.push()?;
        Ok(into.len() - before)
    }
}

/// How a pipelining client reads.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// As fast as it can, 64 KiB at a time.
    Fast,
    /// 256 bytes at a time with a pause after each.
    Slow(Duration),
}

/// Writes [`PIPELINED`] Bindings in one go (as fast as the connection takes them) while
/// reading; checks every answer, in order, against its transaction ID and `local`.
/// Returns how long it took.
fn pipeline(wire: &mut dyn Wire, local: SocketAddr, reading: Reading, tag: u8) -> Duration {
    let requests: Vec<u8> = (0..PIPELINED)
        .flat_map(|n| binding_request(tid(n, tag)))
        .collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(30);
    let (mut sent, mut answered) = (0, 0);
    let mut pending = Vec::new();
    while answered < PIPELINED {
        assert!(
            Instant::now() < deadline,
            "{answered} of {PIPELINED} answers after 30 s ({sent} bytes of {} written, \
             {reading:?})",
            requests.len()
        );
        let wrote = if sent < requests.len() {
            wire.write_some(&requests[sent..]).unwrap()
        } else {
            0
        };
        sent += wrote;
        let max = match reading {
            Reading::Fast => 65_536,
            Reading::Slow(_) => 256,
        };
        let read = wire.read_some(&mut pending, max).unwrap_or_else(|e| {
            panic!("{answered} of {PIPELINED} answers, then {e} ({reading:?})")
        });
        while let Framing::Frame(f) = next_frame(&pending) {
            let answer: Vec<u8> = pending.drain(..f.len()).collect();
            assert_eq!(mapped_address(&answer, tid(answered, tag)), local);
            answered += 1;
        }
        match reading {
            Reading::Slow(pause) if read > 0 => std::thread::sleep(pause),
            _ if read == 0 && wrote == 0 => std::thread::sleep(Duration::from_millis(1)),
            _ => {}
        }
    }
    assert!(pending.is_empty(), "bytes after the last answer");
    start.elapsed()
}

/// A certificate for 127.0.0.1 that rustls accepts as an end entity (not a CA), made with
/// openssl at test time.
fn certificate(dir: &TempDir) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let made = Command::new("timeout")
        .args(["20", "openssl", "req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success(), "openssl req failed");
    (cert, key)
}

/// A server with TLS on its TCP port, and client settings that verify its certificate.
fn tls_server(tag: &str, idle_secs: u64) -> (ServerProcess, TlsSettings, TempDir) {
    let dir = TempDir::new(&format!("{tag}-cert"));
    let (cert, key) = certificate(&dir);
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let server = ServerProcess::start(tag, &config(idle_secs, 10, &tls));
    let settings = turnpike_bench::tls::settings(server.tcp[0], None, Some(&cert), false)
        .expect("TLS client settings");
    (server, settings, dir)
}

#[test]
fn two_thousand_pipelined_bindings_all_answered_in_order_over_tcp() {
    let server = ServerProcess::start("tcp-pipeline", &config(30, 10, ""));
    let addr = server.tcp[0];
    let readings = [Reading::Fast, Reading::Slow(Duration::from_millis(2))];
    for (i, reading) in readings.into_iter().enumerate() {
        // The slow reader's small receive buffer fills at once, and the server's writes
        // wait for it.
        let small = matches!(reading, Reading::Slow(_)).then_some(4096);
        let stream = connect(addr, small);
        let local = stream.local_addr().unwrap();
        stream.set_nonblocking(true).unwrap();
        let took = pipeline(&mut Plain(stream), local, reading, i as u8 + 1);
        eprintln!("tcp, {reading:?}: {PIPELINED} answers in order in {took:?}");
    }
    assert!(server.stop().success());
}

#[test]
fn two_thousand_pipelined_bindings_all_answered_in_order_over_tls() {
    let (server, settings, _dir) = tls_server("tls-pipeline", 30);
    let addr = server.tcp[0];
    let readings = [Reading::Fast, Reading::Slow(Duration::from_millis(2))];
    for (i, reading) in readings.into_iter().enumerate() {
        let small = matches!(reading, Reading::Slow(_)).then_some(4096);
        let stream = connect(addr, small);
        let local = stream.local_addr().unwrap();
        let mut tls = Tls::new(&settings, stream);
        let took = pipeline(&mut tls, local, reading, i as u8 + 1);
        eprintln!("tls, {reading:?}: {PIPELINED} answers in order in {took:?}");
    }
    assert!(server.stop().success());
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Non-reading connections of each kind (TCP, TLS).
const NON_READERS: usize = 4;
/// Requests each non-reader writes at most: 37,449 Bindings, whose answers (1.8 MB) are
/// far more than its queue holds. (The debug build answers about 35,000 Bindings a second,
/// so more would only keep the server busy.)
const NON_READER_BYTES: usize = 1 << 20;
/// Bound on the server's RSS growth per connection that never reads: its write queue (256
/// answers of 48 bytes), its read buffer, and with TLS rustls's buffers (64 KiB of records
/// waiting for the socket at most). The answers the kernel holds in socket buffers are not
/// in RSS.
const RSS_PER_NON_READER_BOUND_KIB: u64 = 256;

#[test]
fn clients_that_never_read_hold_bounded_memory_and_block_no_one() {
    // Idle and write timeout 3 s.
    let idle = Duration::from_secs(3);
    let (server, settings, _dir) = tls_server("tcp-non-readers", idle.as_secs());
    let addr = server.tcp[0];
    let pid = server.pid();

    // Warm up the TCP and TLS paths once, then take the baseline.
    let mut good = connect(addr, None);
    binding_round_trip(&mut good, 0, Duration::from_secs(1));
    {
        let stream = connect(addr, None);
        let local = stream.local_addr().unwrap();
        let mut tls = Tls::new(&settings, stream);
        tls.handshake(Duration::from_secs(3));
        let mut pending = Vec::new();
        tls.write_some(&binding_request(tid(0, 0xA0))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !matches!(next_frame(&pending), Framing::Frame(_)) {
            assert!(Instant::now() < deadline, "no answer over TLS");
            tls.read_some(&mut pending, 4096).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(mapped_address(&pending, tid(0, 0xA0)), local);
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kib(pid);

    // Clients that write requests as fast as the server takes them and read nothing.
    let mut wires: Vec<Box<dyn Wire>> = Vec::new();
    for _ in 0..NON_READERS {
        let stream = connect(addr, Some(4096));
        stream.set_nonblocking(true).unwrap();
        wires.push(Box::new(Plain(stream)));
    }
    for _ in 0..NON_READERS {
        let mut tls = Tls::new(&settings, connect(addr, Some(4096)));
        tls.handshake(Duration::from_secs(3));
        wires.push(Box::new(tls));
    }
    let requests: Vec<u8> = (0..PIPELINED)
        .flat_map(|n| binding_request(tid(n, 0xAA)))
        .collect();
    let mut written = vec![0usize; wires.len()];
    let mut worst = Duration::ZERO;
    let mut checks = 0;
    let start = Instant::now();
    // For 2 s, up to NON_READER_BYTES each (the kernel's socket buffers on loopback take
    // megabytes even once the server has stopped reading: they are not in its RSS).
    while start.elapsed() < Duration::from_secs(2) {
        for (wire, total) in wires.iter_mut().zip(written.iter_mut()) {
            // As much as the connection takes now (a connection the server has given up
            // on takes nothing more).
            for _ in 0..8 {
                if *total >= NON_READER_BYTES {
                    break;
                }
                let at = *total % requests.len();
                let took = wire.write_some(&requests[at..]).unwrap_or(0);
                *total += took;
                if took == 0 {
                    break;
                }
            }
        }
        // Meanwhile another client is answered at once.
        worst = worst.max(binding_round_trip(
            &mut good,
            checks + 1,
            Duration::from_secs(1),
        ));
        checks += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_held = rss_kib(pid);
    worst = worst.max(binding_round_trip(&mut good, 9999, Duration::from_secs(1)));
    let growth = rss_held.saturating_sub(rss_before);
    let total_written: usize = written.iter().sum();
    eprintln!(
        "{} non-readers wrote {total_written} bytes of requests ({:?} KiB each); server \
         VmRSS {rss_before} KiB -> {rss_held} KiB (+{growth} KiB, {:.1} KiB per non-reader); \
         another client's {checks} Bindings meanwhile answered within {worst:?} at worst",
        wires.len(),
        written.iter().map(|w| w / 1024).collect::<Vec<_>>(),
        growth as f64 / wires.len() as f64
    );
    assert!(
        growth <= RSS_PER_NON_READER_BOUND_KIB * wires.len() as u64,
        "server RSS grew by {growth} KiB for {} non-reading connections: more than \
         {RSS_PER_NON_READER_BOUND_KIB} KiB each",
        wires.len()
    );
    assert!(worst < Duration::from_secs(1), "a Binding took {worst:?}");

    // The server ends them by itself (the write timeout once an answer waits longer than
    // the idle timeout, or the idle timeout once it has read and answered everything):
    // without reading from them, the open connections fall to the one reading client.
    let stopped = Instant::now();
    let metrics = server.metrics.expect("metrics");
    loop {
        let open = sample(
            &http::request(metrics, "GET", "/metrics", &[], None).body,
            "turnpike_tcp_connections_open",
        );
        if open == 1.0 {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "{open} connections still open 30 s after the non-readers stopped writing"
        );
        // The reading client keeps its own connection alive meanwhile.
        binding_round_trip(&mut good, 20_000, Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "the server closed every non-reader {:?} after they stopped writing",
        stopped.elapsed()
    );
    binding_round_trip(&mut good, 10_000, Duration::from_secs(1));
    assert!(server.stop().success());
}

/// The value of the sample `series` (name and labels exactly as written).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

fn dropped_queue_full(server: &ServerProcess) -> f64 {
    let resp = http::request(
        server.metrics.expect("metrics"),
        "GET",
        "/metrics",
        &[],
        None,
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    sample(
        &resp.body,
        r#"turnpike_dropped_packets_total{reason="queue_full"}"#,
    )
}

#[test]
fn relayed_data_to_a_tcp_client_that_does_not_read_is_dropped_and_counted() {
    let relay = "[relay]\nips = [\"127.0.0.1\"]\nports = \"29000-29099\"\n\
                 [peers]\ndangerous_allow_loopback_peers = true\n";
    let server = ServerProcess::start("tcp-relay-drop", &config(30, 10, relay));
    let credentials = Credentials::Rest {
        secret: SECRET.into(),
        user: "slow-reader".into(),
    };
    let mut client =
        TurnClient::connect_over(server.tcp[0], &credentials, &Transport::Tcp).unwrap();
    let relayed = client.allocate(None).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .create_permission(peer.local_addr().unwrap())
        .unwrap();
    assert_eq!(dropped_queue_full(&server), 0.0);

    // The peer sends 20,000 datagrams of 1,000 bytes (20 MB) within about 4 s; the client
    // reads nothing meanwhile.
    let payload = [0x5Au8; 1000];
    let start = Instant::now();
    let mut sent = 0;
    for i in 0..20_000 {
        if peer.send_to(&payload, relayed).is_ok() {
            sent += 1;
        }
        if i % 200 == 199 {
            std::thread::sleep(Duration::from_millis(40));
        }
        if start.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let dropped = dropped_queue_full(&server);

    // Then it reads: what was queued arrives, and its connection still answers a Refresh.
    let mut delivered = 0;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while let Some(_frame) = client.recv_frame(Duration::from_millis(500)).unwrap() {
        delivered += 1;
        assert!(Instant::now() < drain_deadline, "still draining after 10 s");
    }
    let lifetime = client
        .refresh(600)
        .expect("Refresh answered after the flood");
    eprintln!(
        "relayed to a non-reading TCP client: {sent} datagrams sent by the peer, {dropped} \
         dropped as queue_full, {delivered} delivered once it read; Refresh -> {lifetime} s"
    );
    assert!(dropped > 0.0, "nothing counted as dropped");
    assert!(delivered > 0, "nothing delivered");
    assert!(
        dropped + delivered as f64 <= sent as f64,
        "dropped {dropped} + delivered {delivered} > sent {sent}"
    );
    assert!(server.stop().success());
}
