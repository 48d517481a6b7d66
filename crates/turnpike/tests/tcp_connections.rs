//! 1,000 idle TCP connections against the real binary, from several loopback source addresses:
//! the per-source cap and the total cap refuse at once while the held connections stay open,
//! the server's memory grows by a bounded amount per connection, and the idle timeout closes
//! every connection and frees every slot.
//!
//! Each held connection sends one STUN Binding and reads the answer: that proves the server
//! accepted and counted it, and moves it from the first-byte wait (`handshake_timeout_secs`,
//! set long here) to the idle timeout, which is what is measured.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{ServerProcess, binding_request, mapped_address};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use turnpike_stun::framing::{Framing, next_frame};

/// `[tcp] max_connections_per_ip`.
const PER_IP: usize = 400;
/// `[tcp] max_connections`.
const TOTAL: usize = 1000;
/// `[tcp] idle_timeout_secs`.
const IDLE: Duration = Duration::from_secs(3);
/// The test must finish within this, whatever happens (each wait takes from it).
const BUDGET: Duration = Duration::from_secs(20);
/// Bound on the server's RSS growth per held connection. Measured on a 2-core Debian box with
/// the debug build the tests run: 12.5 KiB per connection (a 4 KiB read buffer, a 2 KiB
/// response buffer, two tasks, a write queue, bookkeeping; socket buffers are the kernel's and
/// not in RSS). 32 KiB is 2.5 times that, room for allocator slack and another layout, and
/// still catches a per-connection buffer of a frame's maximum size (64 KiB).
const RSS_PER_CONNECTION_BOUND_KIB: u64 = 32;
/// The 1,000 connections: 400 + 400 from two sources (each at the per-source cap) and 200
/// from a third.
const HELD: [([u8; 4], usize); 3] = [
    ([127, 0, 0, 2], 400),
    ([127, 0, 0, 3], 400),
    ([127, 0, 0, 4], 200),
];
/// A source that holds nothing: refused only by the total cap.
const FRESH: [u8; 4] = [127, 0, 0, 5];

fn config() -> String {
    format!(
        "[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n[turn]\nsecrets = [\"tcp-thousand\"]\n\
         [tcp]\nidle_timeout_secs = {}\n\
         max_connections = {TOTAL}\nmax_connections_per_ip = {PER_IP}\nhandshake_timeout_secs = 30\n",
        IDLE.as_secs()
    )
}

/// The time left of the test's budget, at most `cap`.
struct Budget(Instant);

impl Budget {
    fn left(&self, cap: Duration) -> Duration {
        let left = BUDGET.saturating_sub(self.0.elapsed());
        assert!(!left.is_zero(), "test budget of {BUDGET:?} spent");
        left.min(cap)
    }
}

/// One client connection, bound to `source` before connecting.
struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
    /// When its last request was written: the server's idle clock starts about then.
    last_write: Instant,
}

fn connect_from(source: [u8; 4], server: SocketAddr, budget: &Budget) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(source)), 0);
    socket
        .bind(&SockAddr::from(local))
        .unwrap_or_else(|e| panic!("bind {local}: {e}"));
    socket
        .connect_timeout(&SockAddr::from(server), budget.left(Duration::from_secs(3)))
        .unwrap_or_else(|e| panic!("connect from {local} to {server}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream
}

fn tid(n: usize, round: u8) -> [u8; 12] {
    let mut t = [round; 12];
    t[..8].copy_from_slice(&(n as u64).to_be_bytes());
    t
}

impl Conn {
    fn send_binding(&mut self, n: usize, round: u8) {
        self.stream
            .write_all(&binding_request(tid(n, round)))
            .unwrap_or_else(|e| panic!("connection {n}: write: {e}"));
        self.last_write = Instant::now();
    }

    /// Reads the answer to [`Conn::send_binding`] and checks it names this connection.
    fn expect_binding(&mut self, n: usize, round: u8, budget: &Budget) {
        let response = loop {
            if let Framing::Frame(f) = next_frame(&self.pending) {
                break self.pending.drain(..f.len()).collect::<Vec<u8>>();
            }
            self.stream
                .set_read_timeout(Some(budget.left(Duration::from_secs(3))))
                .unwrap();
            let mut chunk = [0u8; 256];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection {n} (round {round}): closed by the server"),
                Ok(k) => self.pending.extend_from_slice(&chunk[..k]),
                Err(e) => panic!("connection {n} (round {round}): no answer: {e}"),
            }
        };
        assert_eq!(
            mapped_address(&response, tid(n, round)),
            self.stream.local_addr().unwrap()
        );
    }
}

/// Opens `count` connections from `source`, then sends a Binding on each, then reads every
/// answer: pipelined, so 1,000 take well under a second.
fn open_held(
    source: [u8; 4],
    count: usize,
    first: usize,
    server: SocketAddr,
    budget: &Budget,
) -> Vec<Conn> {
    let mut conns: Vec<Conn> = (0..count)
        .map(|_| Conn {
            stream: connect_from(source, server, budget),
            pending: Vec::new(),
            last_write: Instant::now(),
        })
        .collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send_binding(first + i, 1);
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.expect_binding(first + i, 1, budget);
    }
    conns
}

/// How a connection the server refuses ends: EOF or reset, and how long that took. The
/// client's handshake completes in the kernel before the server accepts, so a refusal shows as
/// a close right after connecting, with no answer to the Binding sent.
fn refused(source: [u8; 4], server: SocketAddr, budget: &Budget) -> Result<Duration, String> {
    let mut stream = connect_from(source, server, budget);
    let start = Instant::now();
    let _ = stream.write_all(&binding_request([0xEE; 12]));
    stream
        .set_read_timeout(Some(budget.left(Duration::from_secs(1))))
        .unwrap();
    let mut buf = [0u8; 128];
    match stream.read(&mut buf) {
        Ok(0) => Ok(start.elapsed()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(start.elapsed())
        }
        Ok(n) => Err(format!(
            "answered with {n} bytes: it was served, not refused"
        )),
        Err(e) => Err(format!("still open after {:?}: {e}", start.elapsed())),
    }
}

/// Whether the server has closed `stream` (EOF or reset), waiting at most `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match stream.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
    }
}

/// Whether `stream` is still open and silent right now (a read would block).
fn open_now(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    let mut reader = stream;
    let open = matches!(reader.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
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

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The soft limit on open files of a process, from `/proc/PID/limits`.
fn nofile_soft(pid: &str) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| {
            if v == "unlimited" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        })
        .expect("Max open files in /proc/PID/limits")
}

/// This test holds 1,000+ sockets, and so does the server it starts (which inherits the
/// limit). If the soft limit is too low, raise it with `prlimit` (util-linux) up to the hard
/// limit: no privilege needed, and no unsafe `setrlimit` in the test.
fn ensure_fd_limit(need: u64) {
    let me = std::process::id().to_string();
    if nofile_soft(&me) >= need {
        return;
    }
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &me, &format!("--nofile={need}:")])
        .status();
    let now = nofile_soft(&me);
    assert!(
        now >= need,
        "open-file limit {now} < {need}, and prlimit could not raise it: run `ulimit -n {need}` first"
    );
}

#[test]
fn a_thousand_idle_connections_meet_the_caps_and_the_idle_timeout() {
    let budget = Budget(Instant::now());
    // Both sides hold 1,000 sockets plus a few; the server inherits the limit.
    ensure_fd_limit(2048);
    let server = ServerProcess::start("tcp-thousand", &config());
    let addr = server.tcp[0];
    let pid = server.pid();
    let server_limit = nofile_soft(&pid.to_string());
    assert!(
        server_limit >= TOTAL as u64 + 100,
        "the server's open-file limit {server_limit} is too low for {TOTAL} connections"
    );

    // Warm up the accept and connection paths once, then take the baseline.
    {
        let mut warm = Conn {
            stream: connect_from([127, 0, 0, 1], addr, &budget),
            pending: Vec::new(),
            last_write: Instant::now(),
        };
        warm.send_binding(0, 0);
        warm.expect_binding(0, 0, &budget);
    }
    std::thread::sleep(Duration::from_millis(200));
    let (rss_before, fds_before) = (rss_kib(pid), fd_count(pid));

    // One source up to its cap; one more from it is refused at once, with 400 of 1,000 open.
    let setup = Instant::now();
    let (a, a_count) = HELD[0];
    assert_eq!(a_count, PER_IP);
    let mut held = open_held(a, a_count, 0, addr, &budget);
    let per_source_refusal =
        refused(a, addr, &budget).unwrap_or_else(|e| panic!("401st from {a:?}: {e}"));

    // The other sources up to 1,000 in total; then a source holding nothing is refused too.
    for &(source, count) in &HELD[1..] {
        let first = held.len();
        held.extend(open_held(source, count, first, addr, &budget));
    }
    assert_eq!(held.len(), TOTAL);
    let setup_time = setup.elapsed();
    let total_refusal =
        refused(FRESH, addr, &budget).unwrap_or_else(|e| panic!("1,001st from {FRESH:?}: {e}"));

    // Memory and descriptors with 1,000 held.
    let (rss_held, fds_held) = (rss_kib(pid), fd_count(pid));

    // The refusals closed nothing else: every held connection still answers. (This also
    // restarts every idle clock, so the setup time does not count against the timeout.)
    for (n, c) in held.iter_mut().enumerate() {
        c.send_binding(n, 2);
    }
    for (n, c) in held.iter_mut().enumerate() {
        c.expect_binding(n, 2, &budget);
    }
    let recheck_done = Instant::now();
    let first_write = held.iter().map(|c| c.last_write).min().unwrap();
    let last_write = held.iter().map(|c| c.last_write).max().unwrap();

    // Shortly before the idle timeout, all still open...
    let early = first_write + IDLE - Duration::from_millis(600);
    std::thread::sleep(early.saturating_duration_since(Instant::now()));
    let checked_early_at = first_write.elapsed();
    let closed_early = held.iter().filter(|c| !open_now(&c.stream)).count();

    // ...and after it, every one closed by the server (EOF or reset), within 2 s of its time.
    let mut still_open = 0;
    for c in &mut held {
        let by = c.last_write + IDLE + Duration::from_secs(2);
        let wait = by.saturating_duration_since(Instant::now());
        if !closed_within(
            &mut c.stream,
            budget.left(wait.max(Duration::from_millis(1))),
        ) {
            still_open += 1;
        }
    }
    let all_closed_after = last_write.elapsed();

    // The server let go of the sockets...
    let mut fds_after = fd_count(pid);
    let deadline = Instant::now() + budget.left(Duration::from_secs(2));
    while fds_after > fds_before + 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        fds_after = fd_count(pid);
    }
    let rss_after = rss_kib(pid);
    drop(held);

    // ...and of the slots: a full source's worth again from the first source, and one more
    // from a fresh one.
    let again = open_held(a, PER_IP, 10_000, addr, &budget);
    let mut fresh = Conn {
        stream: connect_from(FRESH, addr, &budget),
        pending: Vec::new(),
        last_write: Instant::now(),
    };
    fresh.send_binding(20_000, 3);
    fresh.expect_binding(20_000, 3, &budget);
    // Memory freed by the closed connections is reused, not added to.
    let rss_again = rss_kib(pid);
    drop(again);
    drop(fresh);

    let growth = rss_held.saturating_sub(rss_before);
    let per_conn = growth as f64 / TOTAL as f64;
    eprintln!(
        "tcp-thousand: {TOTAL} connections from {} sources opened and answered in {:.0} ms; \
         refused at once: 401st from one source after {:.2} ms, 1,001st from a fresh source after \
         {:.2} ms; server VmRSS {rss_before} KiB -> {rss_held} KiB with {TOTAL} held (+{growth} KiB, \
         {per_conn:.1} KiB per connection) -> {rss_after} KiB after they closed -> {rss_again} KiB \
         with {PER_IP} + 1 open again; server fds \
         {fds_before} -> {fds_held} -> {fds_after}; recheck of {TOTAL} took {:.0} ms; at {:.2} s \
         idle {closed_early} closed; all closed {:.2} s after the last request (idle timeout {:?}); \
         whole test {:.1} s",
        HELD.len(),
        setup_time.as_secs_f64() * 1000.0,
        per_source_refusal.as_secs_f64() * 1000.0,
        total_refusal.as_secs_f64() * 1000.0,
        (recheck_done - first_write).as_secs_f64() * 1000.0,
        checked_early_at.as_secs_f64(),
        all_closed_after.as_secs_f64(),
        IDLE,
        budget.0.elapsed().as_secs_f64()
    );

    assert!(
        per_source_refusal < Duration::from_millis(500),
        "per-source cap: the 401st connection took {per_source_refusal:?} to close"
    );
    assert!(
        total_refusal < Duration::from_millis(500),
        "total cap: the 1,001st connection took {total_refusal:?} to close"
    );
    assert!(
        fds_held >= fds_before + TOTAL,
        "the server holds {fds_held} descriptors with {TOTAL} connections (baseline {fds_before})"
    );
    assert!(
        growth <= RSS_PER_CONNECTION_BOUND_KIB * TOTAL as u64,
        "server RSS grew by {growth} KiB for {TOTAL} idle connections: more than \
         {RSS_PER_CONNECTION_BOUND_KIB} KiB each"
    );
    assert!(
        rss_again <= rss_held + growth / 4,
        "server RSS {rss_again} KiB with {} connections reopened, above the {rss_held} KiB it \
         had with {TOTAL}: closed connections' memory is not reused",
        PER_IP + 1
    );
    assert_eq!(
        closed_early, 0,
        "{closed_early} connections closed {checked_early_at:?} after their last request, \
         before the idle timeout of {IDLE:?}"
    );
    assert_eq!(
        still_open, 0,
        "{still_open} connections still open 2 s past the idle timeout"
    );
    assert!(
        fds_after <= fds_before + 5,
        "the server still holds {fds_after} descriptors after the idle timeout (baseline {fds_before})"
    );
    assert!(server.stop().success(), "clean exit on SIGTERM");
    assert!(budget.0.elapsed() < BUDGET, "took {:?}", budget.0.elapsed());
}
