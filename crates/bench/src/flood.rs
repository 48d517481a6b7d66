//! Flood: unauthenticated Binding and Allocate requests from many distinct source
//! addresses in 127.0.0.0/8, for checking that a server keeps no state for sources that
//! never authenticate.
//!
//! No raw socket is needed: one UDP socket bound to `0.0.0.0:port` sends every datagram
//! with an `IP_PKTINFO` control message naming its source address (Linux accepts any
//! local address, and all of 127.0.0.0/8 is local), batched with `sendmmsg` ([`SendBuffer`],
//! as on the load engine's shared send path). The answers come back to
//! `127.x.y.z:port`, i.e. to the same socket, and are read with `recvmmsg`, each with its
//! destination address. The transaction ID carries the source index, so every answer is
//! checked against the source its request came from.
//!
//! [`FloodKind::Refresh`] floods with *valid credentials* instead: every source first asks
//! for a nonce with an unsigned Allocate (its 401 carries REALM and a NONCE bound to that
//! source), then sends a signed Refresh from a 5-tuple that has no allocation (answered
//! 437, RFC 8656 §7.3). That is what an authenticated user can make a server store per
//! spoofed 5-tuple: the answer kept for retransmissions (RFC 8489 §6.3.4).
//!
//! Loopback only: a non-loopback server is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;
use turnpike_stun::attr::{
    Lifetime, Nonce, Realm, RequestedTransport, TransportProtocol, XorMappedAddress,
};
use turnpike_stun::{
    Class, EncodeError, IntegrityKey, Message, MessageType, MessageWriter, Method, TransactionId,
};

use crate::client::credentials::{long_term_key, sign};
use crate::client::{Credentials, error_code};
use turnpike_udp::{RecvBatch, SENDMMSG_MAX, SendBuffer, sockopt, sys};

/// The first spoofed source address by default.
pub const FIRST_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);
/// The first four bytes of every transaction ID of a flood.
const TAG: [u8; 4] = *b"fl00";
/// Bytes of one request buffer (an unsigned request is at most 36 bytes; a signed Refresh
/// carries USERNAME, REALM and NONCE of at most 128 bytes each).
const SLOT: usize = 512;
/// Bytes of one receive buffer.
const RX_SLOT: usize = 1024;

/// Which requests to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FloodKind {
    /// Binding requests.
    Binding,
    /// Allocate requests without credentials (each answered 401).
    Allocate,
    /// Binding and Allocate, alternating.
    Both,
    /// Signed Refresh requests with valid credentials (`--secret` or `--password`) from
    /// sources that have no allocation: each source first gets its nonce with an unsigned
    /// Allocate (401), then sends `per_source` Refreshes (each answered 437).
    Refresh,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct FloodParams {
    /// The server: IPv4 loopback.
    pub server: SocketAddr,
    /// Which requests.
    pub kind: FloodKind,
    /// Distinct source addresses.
    pub sources: u32,
    /// Requests per source.
    pub per_source: u32,
    /// Requests per second, all sources together.
    pub rate: f64,
    /// The first source address (host byte 1..=254); the next ones count upwards,
    /// skipping host bytes 0 and 255.
    pub first_source: Ipv4Addr,
    /// The local port of the flood socket (0: any).
    pub port: u16,
    /// Datagrams per sendmmsg call.
    pub batch: usize,
    /// How long to wait for answers after the last send.
    pub drain: Duration,
    /// The credentials that sign the requests of [`FloodKind::Refresh`] (unused by the
    /// other kinds).
    pub credentials: Option<Credentials>,
}

/// Why a flood could not run.
#[derive(Debug)]
pub enum FloodError {
    /// The server is not on IPv4 loopback.
    NotLoopback(SocketAddr),
    /// The parameters are out of range.
    Params(String),
    /// A socket call failed.
    Io(io::Error),
}

impl fmt::Display for FloodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLoopback(a) => write!(
                f,
                "flood sends from spoofed 127.0.0.0/8 source addresses and only runs against \
                 a server on IPv4 loopback (127.0.0.0/8), not {a}"
            ),
            Self::Params(s) => f.write_str(s),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FloodError {}

impl From<io::Error> for FloodError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// The flood's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloodReport {
    /// The server.
    pub target: String,
    /// Which requests.
    pub kind: Option<FloodKind>,
    /// Distinct source addresses.
    pub sources: u32,
    /// Requests per source.
    pub per_source: u32,
    /// The first and last source address.
    pub first_source: String,
    /// The last source address.
    pub last_source: String,
    /// The local port every source sent from.
    pub port: u16,
    /// Requests per second asked for.
    pub target_rate: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests that could not be sent (socket errors).
    pub send_errors: u64,
    /// [`FloodKind::Refresh`]: sources whose 401 gave them a nonce (the others send no
    /// Refresh); the unsigned Allocates that asked for them are counted in `sent` too.
    pub nonces: u64,
    /// Answers to requests of this flood.
    pub answered: u64,
    /// Binding success responses.
    pub binding_success: u64,
    /// 401 answers (Allocate without credentials).
    pub unauthorized: u64,
    /// Other error responses, by code.
    pub other_errors: BTreeMap<u16, u64>,
    /// Other answers of this flood (e.g. an Allocate success: no authentication!).
    pub other_responses: u64,
    /// Datagrams that were not STUN.
    pub unparsable: u64,
    /// STUN messages that answer no request of this flood.
    pub unmatched: u64,
    /// Answers delivered to another address than the source of their request.
    pub wrong_destination: u64,
    /// Binding successes whose XOR-MAPPED-ADDRESS is not the request's source.
    pub mapped_mismatch: u64,
    /// Seconds from the first to the last send.
    pub send_s: f64,
    /// Seconds from the first send to the last answer waited for.
    pub duration_s: f64,
    /// Requests sent per second of sending.
    pub sent_per_s: f64,
    /// Answered share of the requests sent, percent.
    pub answered_pct: f64,
    /// CPU seconds the generator used.
    pub generator_cpu_s: f64,
    /// The first socket error, if any.
    pub first_error: Option<String>,
}

/// The `i`th source address after `first`, skipping host bytes 0 and 255; None past
/// 127.255.255.254.
pub fn source(first: Ipv4Addr, i: u32) -> Option<Ipv4Addr> {
    let base = u32::from(first);
    let host = base & 0xff;
    if !(1..=254).contains(&host) {
        return None;
    }
    let offset = u64::from(host - 1) + u64::from(i);
    let net = u64::from(base >> 8) + offset / 254;
    let addr = (net << 8) | (offset % 254 + 1);
    let addr = u32::try_from(addr).ok()?;
    (addr >> 24 == 127).then(|| Ipv4Addr::from(addr))
}

fn tid(index: u32, seq: u64) -> TransactionId {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&TAG);
    t[4..8].copy_from_slice(&index.to_be_bytes());
    t[8..].copy_from_slice(&u32::try_from(seq & 0xffff_ffff).unwrap_or(0).to_be_bytes());
    TransactionId(t)
}

fn encode(buf: &mut [u8], kind: FloodKind, index: u32, seq: u64) -> Result<usize, EncodeError> {
    let binding = match kind {
        FloodKind::Binding => true,
        FloodKind::Allocate | FloodKind::Refresh => false,
        FloodKind::Both => seq.is_multiple_of(2),
    };
    let ty = if binding {
        MessageType::BINDING_REQUEST
    } else {
        MessageType::new(Method::ALLOCATE, Class::Request)
    };
    let mut w = MessageWriter::new(buf, ty, tid(index, seq))?;
    if !binding {
        w.put(&RequestedTransport(TransportProtocol::UDP))?;
    }
    w.put_fingerprint()?;
    Ok(w.finish())
}

/// What a [`FloodKind::Refresh`] source learnt from its 401, and how it signs.
struct Signer {
    username: String,
    password: String,
    /// REALM of the first 401, and the key derived with it.
    key: Option<(String, IntegrityKey)>,
    /// The NONCE each source got (bound by the server to that source's address).
    nonces: Vec<Option<Box<str>>>,
}

impl Signer {
    fn learn(&mut self, index: u32, msg: &Message<&[u8]>) -> bool {
        let (Ok(Some(realm)), Ok(Some(nonce))) = (msg.get::<Realm>(), msg.get::<Nonce>()) else {
            return false;
        };
        if self.key.is_none() {
            if let Ok(k) = long_term_key(&self.username, realm.0, &self.password) {
                self.key = Some((realm.0.to_owned(), k));
            }
        }
        match self.nonces.get_mut(index as usize) {
            Some(slot @ None) => {
                *slot = Some(nonce.0.into());
                true
            }
            _ => false,
        }
    }

    /// A signed Refresh of source `index`, if it has a nonce.
    fn refresh(&self, buf: &mut [u8], index: u32, seq: u64) -> Option<Result<usize, EncodeError>> {
        let nonce = self.nonces.get(index as usize)?.as_deref()?;
        let (realm, key) = self.key.as_ref()?;
        let mut encode = || {
            let ty = MessageType::new(Method::REFRESH, Class::Request);
            let mut w = MessageWriter::new(buf, ty, tid(index, seq))?;
            w.put(&Lifetime(600))?;
            sign(&mut w, &self.username, realm, nonce, key)?;
            w.put_fingerprint()?;
            Ok(w.finish())
        };
        Some(encode())
    }
}

/// The socket and buffers of a flood, and what it has counted so far.
struct Flood<'a> {
    p: &'a FloodParams,
    server: SocketAddrV4,
    socket: UdpSocket,
    tx: SendBuffer<'static>,
    rx: RecvBatch,
    batch: usize,
    report: FloodReport,
    signer: Option<Signer>,
}

/// Runs the flood.
pub fn run(p: &FloodParams) -> Result<FloodReport, FloodError> {
    let server = match p.server {
        SocketAddr::V4(a) if a.ip().is_loopback() => a,
        other => return Err(FloodError::NotLoopback(other)),
    };
    if p.sources == 0 || p.per_source == 0 {
        return Err(FloodError::Params(
            "--sources and --per-source must be > 0".into(),
        ));
    }
    let total = u64::from(p.sources) * u64::from(p.per_source);
    if total > 1_000_000_000 {
        return Err(FloodError::Params("at most 10^9 requests in all".into()));
    }
    if !(p.rate > 0.0 && p.rate <= 10_000_000.0) {
        return Err(FloodError::Params(
            "--rate must be > 0 and ≤ 10 000 000".into(),
        ));
    }
    let signer = match (p.kind, &p.credentials) {
        (FloodKind::Refresh, Some(c)) => {
            let (username, password) = c.username_password();
            Some(Signer {
                username,
                password,
                key: None,
                nonces: vec![None; p.sources as usize],
            })
        }
        (FloodKind::Refresh, None) => {
            return Err(FloodError::Params(
                "--kind refresh needs credentials (--secret or --password)".into(),
            ));
        }
        _ => None,
    };
    let first = p.first_source;
    let last = source(first, p.sources - 1).ok_or_else(|| {
        FloodError::Params(format!(
            "{} sources from {first} do not fit in 127.0.0.0/8 (the first source's host byte \
             must be 1..=254)",
            p.sources
        ))
    })?;
    let batch = p.batch.clamp(1, SENDMMSG_MAX);
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, p.port))?;
    sockopt::enable_pktinfo(&socket)?;
    socket.set_nonblocking(true)?;
    // Answers must not be dropped while the thread is busy sending.
    let _ = sockopt::set_buffers(&socket, 16 << 20);
    let port = socket.local_addr()?.port();
    let report = FloodReport {
        target: server.to_string(),
        kind: Some(p.kind),
        sources: p.sources,
        per_source: p.per_source,
        first_source: first.to_string(),
        last_source: last.to_string(),
        port,
        target_rate: p.rate,
        ..FloodReport::default()
    };
    let cpu0 = sys::cpu_time(false);
    let mut f = Flood {
        p,
        server,
        socket,
        tx: SendBuffer::new(batch, SLOT),
        rx: RecvBatch::with_capacity(64, 0, RX_SLOT, 0).with_destinations(),
        batch,
        report,
        signer,
    };
    let start = Instant::now();
    if f.signer.is_some() {
        // First every source's nonce (one unsigned Allocate each), then its Refreshes.
        f.send_all(u64::from(p.sources), &|buf, index, seq| {
            Some(encode(buf, FloodKind::Allocate, index, seq))
        })?;
        f.drain(f.report.sent)?;
        f.report.nonces = f
            .signer
            .as_ref()
            .map_or(0, |s| s.nonces.iter().flatten().count() as u64);
        let signer = f.signer.take();
        f.send_all(total, &|buf, index, seq| {
            signer.as_ref()?.refresh(buf, index, seq)
        })?;
    } else {
        f.send_all(total, &|buf, index, seq| {
            Some(encode(buf, p.kind, index, seq))
        })?;
    }
    let mut report = f.finish(start)?;
    report.generator_cpu_s = sys::cpu_time(false).saturating_sub(cpu0).as_secs_f64();
    Ok(report)
}

/// Encodes request `seq` of source `index` into the buffer; `None` skips it.
type Encoder<'e> = dyn Fn(&mut [u8], u32, u64) -> Option<Result<usize, EncodeError>> + 'e;

impl Flood<'_> {
    /// Sends `total` requests at the flood's rate (source `seq % sources`), reading the
    /// answers as they come.
    fn send_all(&mut self, total: u64, make: &Encoder<'_>) -> Result<(), FloodError> {
        let (p, batch) = (self.p, self.batch);
        let mut req = [0u8; SLOT];
        let mut readable = Vec::new();
        let start = Instant::now();
        let mut next: u64 = 0;
        while next < total {
            let elapsed = start.elapsed().as_secs_f64();
            // A batch ahead of the schedule at most.
            let allowed = ((elapsed * p.rate) as u64 + batch as u64).min(total);
            if next < allowed {
                let k = usize::try_from(allowed - next).unwrap_or(batch).min(batch);
                let mut skipped = 0;
                for m in 0..k {
                    let seq = next + m as u64;
                    let index = u32::try_from(seq % u64::from(p.sources)).unwrap_or(0);
                    let src = source(p.first_source, index).unwrap_or(p.first_source);
                    let Some(len) = make(&mut req, index, seq) else {
                        skipped += 1;
                        continue;
                    };
                    let len = len
                        .map_err(|e| FloodError::Io(io::Error::other(format!("encode: {e:?}"))))?;
                    self.tx.push(
                        &req[..len],
                        &[],
                        Some(SocketAddr::V4(self.server)),
                        Some(src),
                    );
                }
                next += skipped;
                let queued = k as u64 - skipped;
                match self.tx.send_until_blocked(&self.socket) {
                    Ok(n) => {
                        next += n as u64;
                        self.report.sent += n as u64;
                    }
                    Err(e) if self.report.sent == 0 => {
                        return Err(FloodError::Io(io::Error::new(
                            e.kind(),
                            format!("sendmmsg with IP_PKTINFO: {e}"),
                        )));
                    }
                    Err(e) => {
                        next += queued;
                        self.report.send_errors += queued;
                        self.report.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            self.receive()?;
            if next < total {
                // Sleep until the next batch is due, or an answer arrives.
                let due = (next + 1).saturating_sub(batch as u64) as f64 / p.rate;
                let wait = due - start.elapsed().as_secs_f64();
                if wait > 0.0 {
                    let _ = sys::poll_readable(
                        &[&self.socket],
                        &mut readable,
                        Some(Duration::from_secs_f64(wait)),
                    );
                }
            }
        }
        Ok(())
    }

    /// Waits up to the drain time until `expected` answers (all classes) are in.
    fn drain(&mut self, expected: u64) -> Result<(), FloodError> {
        let mut readable = Vec::new();
        let drain_end = Instant::now() + self.p.drain;
        loop {
            self.receive()?;
            let r = &self.report;
            let seen = r.answered + r.unparsable + r.unmatched;
            let left = drain_end.saturating_duration_since(Instant::now());
            if seen >= expected || left.is_zero() {
                return Ok(());
            }
            let _ = sys::poll_readable(
                &[&self.socket],
                &mut readable,
                Some(left.min(Duration::from_millis(50))),
            );
        }
    }

    fn finish(mut self, start: Instant) -> Result<FloodReport, FloodError> {
        self.report.send_s = start.elapsed().as_secs_f64();
        self.drain(self.report.sent)?;
        let mut report = self.report;
        report.duration_s = start.elapsed().as_secs_f64();
        report.sent_per_s = report.sent as f64 / report.send_s.max(1e-9);
        report.answered_pct = 100.0 * report.answered as f64 / report.sent.max(1) as f64;
        Ok(report)
    }

    /// Reads and classifies every answer already queued.
    fn receive(&mut self) -> io::Result<()> {
        loop {
            let n = self.rx.recv_now(&self.socket)?;
            for i in 0..n {
                let index = classify(
                    self.rx.packet(i),
                    self.rx.destination(i),
                    &mut self.report,
                    self.p.first_source,
                );
                if let (Some(signer), Some(index)) = (&mut self.signer, index) {
                    if let Ok(msg) = Message::new_checked(self.rx.packet(i)) {
                        signer.learn(index, &msg);
                    }
                }
            }
            if n == 0 {
                return Ok(());
            }
        }
    }
}

/// Counts an answer; the source index of a 401 (which carries that source's nonce).
fn classify(
    packet: &[u8],
    dst: Option<Ipv4Addr>,
    report: &mut FloodReport,
    first: Ipv4Addr,
) -> Option<u32> {
    let Ok(msg) = Message::new_checked(packet) else {
        report.unparsable += 1;
        return None;
    };
    let tid = msg.transaction_id().0;
    if tid[..4] != TAG {
        report.unmatched += 1;
        return None;
    }
    let index = u32::from_be_bytes([tid[4], tid[5], tid[6], tid[7]]);
    if index >= report.sources {
        report.unmatched += 1;
        return None;
    }
    let src = source(first, index);
    report.answered += 1;
    if dst.is_some() && dst != src {
        report.wrong_destination += 1;
    }
    let ty = msg.message_type();
    match ty.class {
        Class::Success if ty.method == Method::BINDING => {
            report.binding_success += 1;
            let mapped = msg.get::<XorMappedAddress>().ok().flatten().map(|a| a.0);
            let ok = match (mapped, src) {
                (Some(SocketAddr::V4(m)), Some(s)) => *m.ip() == s && m.port() == report.port,
                _ => false,
            };
            if !ok {
                report.mapped_mismatch += 1;
            }
        }
        Class::Error => {
            let (code, _) = error_code(&msg);
            if code == 401 {
                report.unauthorized += 1;
                return Some(index);
            }
            *report.other_errors.entry(code).or_insert(0) += 1;
        }
        _ => report.other_responses += 1,
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_skip_network_and_broadcast_host_bytes() {
        let f = FIRST_SOURCE;
        assert_eq!(source(f, 0), Some(Ipv4Addr::new(127, 1, 0, 1)));
        assert_eq!(source(f, 253), Some(Ipv4Addr::new(127, 1, 0, 254)));
        assert_eq!(source(f, 254), Some(Ipv4Addr::new(127, 1, 1, 1)));
        assert_eq!(
            source(f, 100_000 - 1),
            Some(Ipv4Addr::new(127, 2, 137, 178))
        );
        assert_eq!(
            source(Ipv4Addr::new(127, 255, 255, 254), 0),
            Some(Ipv4Addr::new(127, 255, 255, 254))
        );
        assert_eq!(source(Ipv4Addr::new(127, 255, 255, 254), 1), None);
        assert_eq!(source(Ipv4Addr::new(127, 0, 0, 0), 0), None);
        let all: std::collections::HashSet<_> = (0..2000).filter_map(|i| source(f, i)).collect();
        assert_eq!(all.len(), 2000);
    }

    #[test]
    fn refuses_a_server_off_loopback() {
        let p = FloodParams {
            server: "192.0.2.1:3478".parse().unwrap(),
            kind: FloodKind::Both,
            sources: 10,
            per_source: 1,
            rate: 1000.0,
            first_source: FIRST_SOURCE,
            port: 0,
            batch: 8,
            drain: Duration::from_millis(10),
            credentials: None,
        };
        let e = run(&p).unwrap_err();
        assert!(matches!(e, FloodError::NotLoopback(_)));
        assert!(e.to_string().contains("loopback"), "{e}");
    }

    #[test]
    fn counts_answers_of_a_fake_server() {
        // A Binding "server" on loopback that answers every request to its source.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            server
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut buf = [0u8; 256];
            let mut seen = 0;
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let msg = Message::new_checked(&buf[..n]).unwrap();
                let mut out = [0u8; 128];
                let ty = MessageType::new(msg.message_type().method, Class::Success);
                let mut w = MessageWriter::new(&mut out, ty, msg.transaction_id()).unwrap();
                w.put(&XorMappedAddress(from)).unwrap();
                let len = w.finish();
                server.send_to(&out[..len], from).unwrap();
                seen += 1;
                if seen == 300 {
                    break;
                }
            }
        });
        let p = FloodParams {
            server: addr,
            kind: FloodKind::Both,
            sources: 300,
            per_source: 1,
            rate: 20_000.0,
            first_source: Ipv4Addr::new(127, 3, 0, 250),
            port: 0,
            batch: 16,
            drain: Duration::from_secs(2),
            credentials: None,
        };
        let r = run(&p).unwrap();
        echo.join().unwrap();
        assert_eq!(r.sent, 300);
        assert_eq!(r.answered, 300, "{r:?}");
        assert_eq!(r.binding_success, 150);
        assert_eq!(r.other_responses, 150);
        assert_eq!((r.wrong_destination, r.mapped_mismatch), (0, 0), "{r:?}");
        assert_eq!(r.last_source, "127.3.2.41");
    }
}
