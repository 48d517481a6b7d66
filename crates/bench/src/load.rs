//! The offered-load engine: N TURN clients send paced traffic through the relay to peer
//! sockets owned by this same process, so one-way latency is measured on one clock.
//!
//! Direction: **client → relay → peer only.** Each client allocates, binds a channel
//! (or installs a permission for Send indications) to a peer socket of the bench, and
//! sends; the peer socket receives plain UDP from the relayed address. Nothing is echoed,
//! so every figure is for one direction and one pass through the relay.
//!
//! Hot path: one pacing thread sends ([`SendPath`]): a plain `send` per datagram on each
//! client's connected socket, `sendmmsg` per client socket, or — the loopback default —
//! one shared wildcard socket whose `sendmmsg` batches carry many clients' datagrams,
//! each with its client's own source address in an `IP_PKTINFO` control message (every
//! client has its own 127.0.1.x address and all share one port, so the server sees each
//! client's exact 5-tuple). One receiving thread per peer socket uses `recvmmsg` (see
//! [`turnpike_udp::RecvBatch`]).
//!
//! Payload layout (at least [`MIN_PAYLOAD`] bytes, big endian): magic `0x5450` (2 bytes),
//! run id (2), flow id (4), sequence number (8), send time in ns since the run's shared
//! `Instant` (8), then filler (zeros). A batched datagram is stamped just before its
//! `sendmmsg` call.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use turnpike_stun::framing::{Framing, next_frame};
use turnpike_stun::{CHANNEL_DATA_HEADER_LEN, ChannelNumber, TransactionId};

use crate::client::{
    ClientError, Credentials, Inbox, Reader, Transport, TurnClient, encode_send_indication,
};
use turnpike_udp::sockopt::enable_rx_info;
use turnpike_udp::{RecvBatch, SendBuffer};

/// The smallest payload: magic, run id, flow id, sequence number, send time.
pub const MIN_PAYLOAD: usize = 24;
const MAGIC: u16 = 0x5450;
/// Socket buffer size asked for on every data socket.
const SOCKET_BUFFER: usize = 4 << 20;
/// How often a long run refreshes each allocation, permission and channel.
const REFRESH_EVERY: Duration = Duration::from_secs(120);
/// The channel every client binds (channels are per allocation).
const CHANNEL: u16 = 0x4000;
/// Datagrams per `sendmmsg` call by default.
pub const DEFAULT_SEND_BATCH: usize = 32;
/// The default pacing quantum (see [`SessionConfig::tick`]).
pub const DEFAULT_TICK: Duration = Duration::from_micros(500);
/// How long the receiving threads let datagrams gather by default (at most a quarter of
/// what a socket's receive buffer holds at the run's rate, see [`Session::run`]).
pub const DEFAULT_RECV_WAIT: Duration = Duration::from_millis(1);
/// Datagrams per receive call by default.
pub const DEFAULT_RECV_BATCH: usize = 64;
/// Room for a datagram's head (framing and the payload's fixed fields) in a send batch.
const HEAD_SLOT: usize = 128;
/// The largest payload.
pub const MAX_PAYLOAD: usize = 8192;
/// The first client source address on the shared send path; client k uses this + k.
const SHARED_BASE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
/// How many source addresses the shared path may try (the rest of 127.0.0.0/8 above
/// [`SHARED_BASE`]).
const SHARED_SPAN: u32 = 0x00FE_FEFE;

/// How the clients' datagrams reach the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SendPath {
    /// One `send` per datagram on each client's own connected socket.
    Plain,
    /// Each client's own connected socket; the datagrams due for a client in one pacing
    /// pass go out in one `sendmmsg`.
    Mmsg,
    /// Loopback IPv4 on Linux: one shared socket on the wildcard address sends for every
    /// client, many clients per `sendmmsg`; each client has its own 127.0.1.x address (all
    /// on one port), given per datagram in an `IP_PKTINFO` control message, and its own
    /// socket on that address for the TURN transactions.
    Shared,
}

impl SendPath {
    /// The default for a target at `addr`: [`SendPath::Shared`] for loopback IPv4 on
    /// Linux, else [`SendPath::Mmsg`].
    pub fn default_for(addr: SocketAddr) -> Self {
        if cfg!(target_os = "linux") && matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()) {
            Self::Shared
        } else {
            Self::Mmsg
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Mmsg => "mmsg",
            Self::Shared => "shared",
        }
    }
}

/// Where the clients' data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum To {
    /// To peer sockets of the bench (client → relay → peer).
    #[default]
    Peers,
    /// To the partner client (2k ↔ 2k+1): client → relay → partner's relay → partner,
    /// both directions; the partner receives ChannelData (or Data indications).
    Clients,
}

/// How a session is set up (see [`Session::setup_with`]).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Number of clients (allocations, flows).
    pub clients: usize,
    /// Peer sockets, each with its own receiving thread (flow `i` goes to peer `i % peers`).
    pub peers: usize,
    /// Framing.
    pub mode: Mode,
    /// The peer sockets' IP address (default: the local address that routes to the server).
    pub peer_ip: Option<IpAddr>,
    /// The send path (default: [`SendPath::default_for`] the target).
    pub send_path: Option<SendPath>,
    /// Datagrams per `sendmmsg` call (1..=[`turnpike_udp::MAX_SEND_BATCH`]).
    pub send_batch: usize,
    /// Whether a client's datagrams due in one pacing pass go as one UDP GSO message
    /// (batched paths, datagrams up to 1452 bytes, where the kernel has GSO).
    pub gso: bool,
    /// How the peer sockets are read: zero wakes the receiving thread for every datagram
    /// that arrives while it waits; more lets datagrams gather for up to this long
    /// between reads when the last read did not fill a batch (fewer wakeups and system
    /// calls on a generator that shares one CPU). Latency is unaffected where the kernel
    /// stamps each datagram's arrival (Linux); elsewhere the wait is forced to zero.
    pub recv_wait: Duration,
    /// The pacing quantum: the sending thread makes at most one pass over the clients
    /// per tick, sending everything due by then, so that a client's datagrams due
    /// within one tick go together (one GSO message). Zero: a pass whenever the next
    /// datagram is due.
    pub tick: Duration,
    /// How the clients reach the server (TURN targets only; the reflector is UDP).
    pub transport: Transport,
    /// Where the data goes. Client to client, `peers` is the number of receiving
    /// threads (client `i` is read by thread `i % peers`).
    pub to: To,
}

impl SessionConfig {
    /// `clients` flows to `peers` peer sockets in `mode`, every other setting default.
    pub fn new(clients: usize, peers: usize, mode: Mode) -> Self {
        Self {
            clients,
            peers,
            mode,
            peer_ip: None,
            send_path: None,
            send_batch: DEFAULT_SEND_BATCH,
            gso: true,
            recv_wait: DEFAULT_RECV_WAIT,
            tick: DEFAULT_TICK,
            transport: Transport::Udp,
            to: To::Peers,
        }
    }
}

/// How data is framed to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// ChannelData (4-byte header).
    Channel,
    /// Send indications (36-byte STUN framing for IPv4 peers).
    Send,
}

/// The pacing of each flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Evenly spaced packets (audio-like).
    Steady,
    /// Video-like: a burst of packets back to back every frame interval (`--fps`).
    Bursty,
}

/// Where the clients' traffic goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A TURN server.
    Turn {
        /// Its UDP address.
        server: SocketAddr,
        /// The credentials.
        credentials: Credentials,
    },
    /// A plain UDP reflector the bench starts on loopback (no TURN): it strips the
    /// ChannelData header and forwards the data to the peer socket. Used to calibrate.
    Reflector {
        /// Pin the reflector's thread to this CPU (put it where the server would run).
        cpu: Option<usize>,
    },
}

/// One offered-load run.
#[derive(Debug, Clone, Copy)]
pub struct RunParams {
    /// Packets per second per client.
    pub rate: f64,
    /// Payload bytes per packet (at least [`MIN_PAYLOAD`]).
    pub size: usize,
    /// How long to send.
    pub duration: Duration,
    /// Pacing shape.
    pub shape: Shape,
    /// Frames per second for [`Shape::Bursty`].
    pub fps: u32,
    /// Longest wait for stragglers after the last send; the run ends as soon as
    /// everything sent has arrived.
    pub drain: Duration,
    /// Stop sending after this many packets in total.
    pub max_packets: u64,
    /// Datagrams per `recvmmsg` call on the peer sockets (1: plain `recv`).
    pub recv_batch: usize,
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Minimum.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
}

/// A histogram of nanoseconds up to a minute (1 ns .. 60 s, 3 significant figures).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!())
}

impl Latency {
    /// The summary of a histogram of nanoseconds (all zero when it is empty).
    pub fn from_hist(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            min_us: us(hist.min()),
            mean_us: hist.mean() / 1000.0,
            p50_us: us(hist.value_at_quantile(0.5)),
            p90_us: us(hist.value_at_quantile(0.9)),
            p99_us: us(hist.value_at_quantile(0.99)),
            p999_us: us(hist.value_at_quantile(0.999)),
            max_us: us(hist.max()),
        }
    }
}

/// Fairness across flows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fairness {
    /// Fewest packets delivered for one flow.
    pub min_delivered: u64,
    /// Most packets delivered for one flow.
    pub max_delivered: u64,
    /// Jain's fairness index over each flow's delivered/sent ratio (1 = perfectly fair).
    pub jain_index: f64,
}

/// The result of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// The server, or `reflector`.
    pub target: String,
    /// Framing.
    pub mode: String,
    /// Pacing shape.
    pub shape: String,
    /// Number of clients (allocations, flows).
    pub clients: usize,
    /// Payload bytes per packet.
    pub size: usize,
    /// Target packets per second per client.
    pub rate_per_client: f64,
    /// Target offered packets per second in total.
    pub target_pps: f64,
    /// Seconds spent sending.
    pub duration_s: f64,
    /// Packets sent.
    pub sent: u64,
    /// Offered packets per second actually achieved by the generator.
    pub offered_pps: f64,
    /// Distinct packets delivered to the peers.
    pub delivered: u64,
    /// Delivered packets per second (over the sending time).
    pub delivered_pps: f64,
    /// Delivered payload Mbit/s.
    pub delivered_mbps: f64,
    /// Packets sent but never delivered.
    pub lost: u64,
    /// Lost / sent, in percent.
    pub loss_pct: f64,
    /// Packets that arrived after a later one of the same flow.
    pub reordered: u64,
    /// Packets delivered more than once (counted once in `delivered`).
    pub duplicates: u64,
    /// Send calls that failed (buffer full, ICMP errors), and failed refreshes.
    pub send_errors: u64,
    /// Refresh + ChannelBind/CreatePermission rounds done during the run.
    pub refreshes: u64,
    /// One-way latency client → relay → peer.
    pub latency: Latency,
    /// RFC 3550 interarrival jitter, mean over flows, microseconds.
    pub jitter_us_mean: f64,
    /// RFC 3550 interarrival jitter, worst flow, microseconds.
    pub jitter_us_max: f64,
    /// Per-flow fairness.
    pub fairness: Fairness,
    /// The calibrated generator ceiling (packets/s), when known.
    pub ceiling_pps: Option<f64>,
    /// Whether the result is bounded by the load generator rather than the server:
    /// the generator could not offer the target load, or delivery is within 10 % of the
    /// calibrated ceiling.
    pub generator_bound: bool,
    /// The client transport (`udp`, `tcp`, `tls`).
    pub transport: String,
    /// Where the data went: `peers` (the bench's peer sockets) or `clients` (each
    /// client's partner, both directions).
    pub to: String,
    /// The send path (`plain`, `mmsg`, `shared`; `stream` over TCP and TLS).
    pub send_path: String,
    /// Over TCP and TLS: the share of the sending time spent in writes, in percent (high
    /// when the server reads slower than the load: TCP backpressure, which shows as
    /// offered < target).
    pub write_wait_pct: f64,
    /// Whether a client's datagrams due together went as one UDP GSO message.
    pub gso: bool,
    /// The pacing quantum, µs.
    pub tick_us: f64,
    /// Datagrams per send system call, on average.
    pub send_batch_mean: f64,
    /// CPU time of the bench's sending and receiving threads over the sending time, in
    /// percent of one CPU.
    pub generator_cpu_pct: f64,
    /// CPU time of the bench's sending and receiving threads per datagram sent, in µs.
    pub generator_cpu_us_per_pkt: f64,
    /// The sending thread's share of `generator_cpu_pct`.
    pub send_cpu_pct: f64,
    /// Datagrams the bench's own peer sockets dropped for want of buffer space (loss
    /// caused by the generator's receiving side, not by the server; counted in `lost`).
    pub receiver_drops: u64,
    /// Datagrams per receive system call, on average.
    pub recv_batch_mean: f64,
    /// Calibration only: datagrams the reflector's socket dropped (the reflector, not the
    /// generator, was the bottleneck; counted in `lost`).
    pub reflector_drops: Option<u64>,
}

struct Flow {
    /// The flow's own socket, connected to the server or reflector (none on the shared
    /// path to the reflector).
    socket: Option<UdpSocket>,
    /// The flow's source address on the shared path.
    src: Option<Ipv4Addr>,
    client: Option<TurnClient>,
    peer: SocketAddr,
    mode: Mode,
    /// A prebuilt frame; the payload sits at `payload_at..`.
    frame: Vec<u8>,
    payload_at: usize,
}

impl Flow {
    /// Builds the flow's frame for `size` payload bytes (ChannelData padded to 4 bytes on
    /// a stream, RFC 8656 §12.5).
    fn build_frame(&mut self, size: usize, stream: bool) {
        match self.mode {
            Mode::Channel => {
                let len = CHANNEL_DATA_HEADER_LEN + size;
                self.frame = vec![0u8; if stream { len.next_multiple_of(4) } else { len }];
                let len = u16::try_from(size).unwrap_or(u16::MAX);
                self.frame[0..2].copy_from_slice(&CHANNEL.to_be_bytes());
                self.frame[2..4].copy_from_slice(&len.to_be_bytes());
                self.payload_at = CHANNEL_DATA_HEADER_LEN;
            }
            Mode::Send => {
                let mut buf = vec![0u8; size + 64];
                let payload = vec![0u8; size];
                let n =
                    encode_send_indication(&mut buf, TransactionId([0; 12]), self.peer, &payload)
                        .unwrap_or(0);
                buf.truncate(n);
                // DATA is the last attribute: its value ends at the padded end.
                self.payload_at = n - size.next_multiple_of(4);
                self.frame = buf;
            }
        }
    }

    fn refresh(&mut self) -> Result<(), ClientError> {
        if let Some(c) = &mut self.client {
            c.refresh(600)?;
            match self.mode {
                Mode::Channel => c.channel_bind(chan(), self.peer)?,
                Mode::Send => c.create_permission(self.peer)?,
            }
        }
        Ok(())
    }
}

fn chan() -> ChannelNumber {
    ChannelNumber::new(CHANNEL).unwrap_or(ChannelNumber::MIN)
}

fn set_buffers(socket: &UdpSocket) {
    let s = SockRef::from(socket);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
}

/// A UDP socket bound to `addr` with `SO_REUSEADDR` (the shared path's sockets).
fn bind_reuse(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The shared path's sending socket: the wildcard address, a free port, `SO_REUSEADDR`.
fn shared_socket() -> io::Result<UdpSocket> {
    let s = bind_reuse(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    set_buffers(&s);
    // It sends only; whatever reaches it (nothing should) is not read.
    let _ = SockRef::from(&s).set_recv_buffer_size(4096);
    Ok(s)
}

/// The `k`th source address of the shared path.
fn shared_ip(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(SHARED_BASE) + k % SHARED_SPAN)
}

/// Deletes every allocation made so far (on a failed setup) instead of leaving them to
/// expire; stops at the first timeout (the server is gone).
fn close_all(flows: &mut [Flow]) {
    for f in flows {
        if let Some(c) = &mut f.client {
            if let Err(ClientError::Timeout(_)) = c.close() {
                break;
            }
        }
    }
}

/// One client's connection as a client-to-client receiving thread reads it.
struct ClientRx {
    /// The flow (client) it belongs to.
    flow: usize,
    reader: Reader,
    /// Bytes read from a TCP connection not yet cut into frames.
    buf: Vec<u8>,
    /// The UDP socket's drop counter as last seen.
    drops: u32,
}

/// The local address that routes to `to` (no packet is sent).
pub(crate) fn local_ip_towards(to: SocketAddr) -> io::Result<IpAddr> {
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(bind)?;
    s.connect(to)?;
    Ok(s.local_addr()?.ip())
}

struct Reflector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The largest datagram expected (set before each run): buffers are sized to it, so
    /// that a batch stays in cache.
    slot: Arc<std::sync::atomic::AtomicUsize>,
    /// Datagrams its socket dropped for want of buffer space (the reflector was slower
    /// than the generator), as last reported by the kernel.
    drops: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Reflector {
    fn start(peers: Vec<SocketAddr>, cpu: Option<usize>) -> io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        set_buffers(&socket);
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let slot = Arc::new(std::sync::atomic::AtomicUsize::new(recv_slot(MIN_PAYLOAD)));
        let slot2 = Arc::clone(&slot);
        let drops = Arc::new(AtomicU64::new(0));
        let drops2 = Arc::clone(&drops);
        let rx_info = turnpike_udp::sockopt::enable_drop_count(&socket).is_ok();
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            let _ = pinned_tx.send(cpu.map(turnpike_udp::sys::pin_current_thread));
            let mut size = 0;
            let mut batch = RecvBatch::with_capacity(1, 0, 1, 0);
            let mut out = SendBuffer::new(1, 1);
            while !stop2.load(Ordering::Relaxed) {
                let want = slot2.load(Ordering::Relaxed);
                if want != size {
                    size = want;
                    batch = RecvBatch::with_capacity(64, 0, size, 0);
                    if rx_info {
                        batch = batch.with_rx_info();
                    }
                    out = SendBuffer::new(64, size);
                    // Every datagram goes to one of a few peers: GSO sends a received
                    // batch in a few trips through the stack, so that the reflector costs
                    // less per datagram than the generator it calibrates.
                    out.set_gso(true);
                }
                let Ok(count) = batch.recv_wait(&socket) else {
                    continue;
                };
                for i in 0..count {
                    let pkt = batch.packet(i);
                    let data = &pkt[CHANNEL_DATA_HEADER_LEN.min(pkt.len())..];
                    let flow = data
                        .get(4..8)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    let peer = peers[flow as usize % peers.len()];
                    let _ = out.push(data, &[], Some(peer), None);
                }
                out.send(&socket);
                if let Some(d) = batch.drops() {
                    drops2.store(u64::from(d), Ordering::Relaxed);
                }
            }
        });
        if let Ok(Some(Err(e))) = pinned_rx.recv_timeout(Duration::from_secs(5)) {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
            return Err(e);
        }
        Ok(Self {
            addr,
            stop,
            slot,
            drops,
            handle: Some(handle),
        })
    }
}

/// A receive buffer slot for datagrams of `size` payload bytes and their framing.
fn recv_slot(size: usize) -> usize {
    (size.min(MAX_PAYLOAD) + 64).next_multiple_of(64)
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Allocated clients and their peer sockets, reusable across runs.
pub struct Session {
    flows: Vec<Flow>,
    peers: Vec<UdpSocket>,
    target_name: String,
    mode: Mode,
    path: SendPath,
    /// The shared path's sending socket.
    shared: Option<UdpSocket>,
    /// Where the shared socket sends (the server or the reflector).
    dest: SocketAddr,
    send_batch: usize,
    gso: bool,
    tick: Duration,
    transport: Transport,
    /// Whether the peer sockets report kernel receive times and drops.
    rx_info: bool,
    recv_wait: Duration,
    /// Each peer socket's drop counter as last seen.
    peer_drops: Vec<u32>,
    to: To,
    /// Client to client: the clients' connections, one group per receiving thread.
    client_rx: Vec<Vec<ClientRx>>,
    /// Client to client: where each client's transactions find their responses during a
    /// run (the receiving threads read the connections).
    inboxes: Vec<Arc<Inbox>>,
    run_id: u16,
    last_refresh: Instant,
    refresh_every: Duration,
    reflector: Option<Reflector>,
    epoch: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target_name)
            .field("flows", &self.flows.len())
            .field("peers", &self.peers.len())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Sets up `clients` flows against `target`: allocations, channels or permissions,
    /// and `peers` peer sockets (flow `i` goes to peer `i % peers`), with the default
    /// send path ([`SendPath::default_for`] the target).
    ///
    /// `progress` is called after each client is ready.
    pub fn setup(
        target: &Target,
        clients: usize,
        peers: usize,
        mode: Mode,
        peer_ip: Option<IpAddr>,
        progress: &dyn Fn(usize),
    ) -> Result<Self, ClientError> {
        let cfg = SessionConfig {
            peer_ip,
            ..SessionConfig::new(clients, peers, mode)
        };
        Self::setup_with(target, &cfg, progress)
    }

    /// Sets up a session as `cfg` says; `progress` is called after each client is ready.
    pub fn setup_with(
        target: &Target,
        cfg: &SessionConfig,
        progress: &dyn Fn(usize),
    ) -> Result<Self, ClientError> {
        let clients = cfg.clients;
        let peers = cfg.peers.clamp(1, clients.max(1));
        let mode = match target {
            Target::Turn { .. } => cfg.mode,
            Target::Reflector { .. } => Mode::Channel,
        };
        let invalid = |what: &str| {
            ClientError::Io(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()))
        };
        let to = cfg.to;
        if to == To::Clients {
            if matches!(target, Target::Reflector { .. }) {
                return Err(invalid("the reflector has no client-to-client mode"));
            }
            if !clients.is_multiple_of(2) {
                return Err(invalid("client-to-client needs an even number of clients"));
            }
            if matches!(cfg.transport, Transport::Tls(_)) {
                return Err(invalid("client-to-client runs over UDP or TCP, not TLS"));
            }
        }
        let peer_ip = match (cfg.peer_ip, target) {
            (Some(ip), _) => ip,
            (None, Target::Turn { server, .. }) => local_ip_towards(*server)?,
            (None, Target::Reflector { .. }) => IpAddr::from([127, 0, 0, 1]),
        };
        let mut peer_sockets = Vec::with_capacity(peers);
        let mut rx_info = true;
        // Client to client, the clients' own sockets receive: no peer sockets.
        for _ in 0..if to == To::Peers { peers } else { 0 } {
            let s = UdpSocket::bind(SocketAddr::new(peer_ip, 0))?;
            set_buffers(&s);
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            rx_info &= enable_rx_info(&s).is_ok();
            peer_sockets.push(s);
        }
        let peer_addrs: Vec<SocketAddr> = peer_sockets
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<Result<_, _>>()?;
        let peer_addrs = if peer_addrs.is_empty() {
            vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))]
        } else {
            peer_addrs
        };
        let (reflector, target_name, dest) = match target {
            Target::Turn { server, .. } => (None, server.to_string(), *server),
            Target::Reflector { cpu } => {
                let r = Reflector::start(peer_addrs.clone(), *cpu)?;
                let addr = r.addr;
                (Some(r), "reflector".to_owned(), addr)
            }
        };
        let transport = match target {
            Target::Turn { .. } => cfg.transport.clone(),
            Target::Reflector { .. } => Transport::Udp,
        };
        // Over a stream each client writes its frames itself: no send path applies.
        let path = if transport.is_stream() {
            SendPath::Plain
        } else {
            cfg.send_path.unwrap_or_else(|| SendPath::default_for(dest))
        };
        if path == SendPath::Shared
            && !(cfg!(target_os = "linux")
                && matches!(dest.ip(), IpAddr::V4(ip) if ip.is_loopback()))
        {
            return Err(invalid(
                "the shared send path needs a server on loopback IPv4 (Linux)",
            ));
        }
        let shared = if path == SendPath::Shared {
            Some(shared_socket()?)
        } else {
            None
        };
        let shared_port = match &shared {
            Some(s) => s.local_addr()?.port(),
            None => 0,
        };
        let mut next_ip = 0u32;
        let mut flows: Vec<Flow> = Vec::with_capacity(clients);
        for i in 0..clients {
            let peer = peer_addrs[i % peer_addrs.len()];
            let made = (|| -> Result<Flow, ClientError> {
                let mut flow = Flow {
                    socket: None,
                    src: None,
                    client: None,
                    peer,
                    mode,
                    frame: Vec::new(),
                    payload_at: 0,
                };
                match target {
                    Target::Turn {
                        server,
                        credentials,
                    } => {
                        let c = if path == SendPath::Shared {
                            // The client's own address on the shared port; skip addresses
                            // something else holds (or whose 5-tuple the server still has).
                            let mut tries = 0;
                            loop {
                                let ip = shared_ip(next_ip);
                                next_ip += 1;
                                tries += 1;
                                let made = bind_reuse(SocketAddr::from((ip, shared_port)))
                                    .map_err(ClientError::Io)
                                    .and_then(|s| TurnClient::from_socket(s, *server, credentials))
                                    .and_then(|mut c| c.allocate(None).map(|_| c));
                                match made {
                                    Ok(c) => {
                                        flow.src = Some(ip);
                                        break c;
                                    }
                                    Err(
                                        ClientError::Io(_)
                                        | ClientError::Rejected { code: 437, .. },
                                    ) if tries < 8 => {}
                                    Err(e) => return Err(e),
                                }
                            }
                        } else {
                            let mut c = TurnClient::connect_over(*server, credentials, &transport)?;
                            c.allocate(None)?;
                            c
                        };
                        if let (SendPath::Plain | SendPath::Mmsg, Some(s)) = (path, c.socket()) {
                            flow.socket = Some(s.try_clone()?);
                        }
                        flow.client = Some(c);
                    }
                    Target::Reflector { .. } => {
                        if path == SendPath::Shared {
                            flow.src = Some(shared_ip(next_ip));
                            next_ip += 1;
                        } else {
                            let socket = UdpSocket::bind("127.0.0.1:0")?;
                            socket.connect(dest)?;
                            flow.socket = Some(socket);
                        }
                    }
                }
                if let Some(s) = &flow.socket {
                    set_buffers(s);
                }
                Ok(flow)
            })();
            let flow = match made {
                Ok(flow) => flow,
                Err(e) => {
                    close_all(&mut flows);
                    return Err(e);
                }
            };
            flows.push(flow);
            progress(i + 1);
        }
        // Then each client's channel or permission: to its peer socket, or to its
        // partner's relayed address (clients 2k and 2k+1 are partners).
        for i in 0..flows.len() {
            if to == To::Clients {
                match flows[i ^ 1].client.as_ref().and_then(TurnClient::relayed) {
                    Some(partner) => flows[i].peer = partner,
                    None => continue,
                }
            }
            let f = &mut flows[i];
            let peer = f.peer;
            let bound = match (&mut f.client, mode) {
                (None, _) => Ok(()),
                (Some(c), Mode::Channel) => c.channel_bind(chan(), peer),
                (Some(c), Mode::Send) => c.create_permission(peer),
            };
            if let Err(e) = bound {
                close_all(&mut flows);
                return Err(e);
            }
        }
        // Client to client, receiving threads read the clients' own connections.
        let mut client_rx: Vec<Vec<ClientRx>> = Vec::new();
        if to == To::Clients {
            client_rx.resize_with(peers, Vec::new);
            for (i, f) in flows.iter().enumerate() {
                let reader = match f.client.as_ref().map(TurnClient::reader) {
                    Some(Ok(Some(r))) => r,
                    Some(Err(e)) => {
                        close_all(&mut flows);
                        return Err(e.into());
                    }
                    _ => continue,
                };
                if let Reader::Udp(s) = &reader {
                    rx_info &= enable_rx_info(s).is_ok();
                    set_buffers(s);
                }
                client_rx[i % peers].push(ClientRx {
                    flow: i,
                    reader,
                    buf: Vec::new(),
                    drops: 0,
                });
            }
        }
        let inboxes = (0..if to == To::Clients { flows.len() } else { 0 })
            .map(|_| Arc::new(Inbox::default()))
            .collect();
        Ok(Self {
            flows,
            peers: peer_sockets,
            target_name,
            mode,
            path,
            shared,
            dest,
            send_batch: cfg.send_batch.clamp(1, turnpike_udp::MAX_SEND_BATCH),
            gso: cfg.gso && path != SendPath::Plain && turnpike_udp::gso_available(),
            tick: cfg.tick.min(Duration::from_millis(20)),
            transport,
            rx_info,
            recv_wait: if rx_info {
                cfg.recv_wait.min(Duration::from_millis(50))
            } else {
                Duration::ZERO
            },
            peer_drops: vec![0; peers],
            run_id: 0,
            last_refresh: Instant::now(),
            refresh_every: REFRESH_EVERY,
            reflector,
            epoch: Instant::now(),
            to,
            client_rx,
            inboxes,
        })
    }

    /// How long a receiving thread lets datagrams gather in this run: the configured
    /// wait, but at most the time a quarter of a socket's receive buffer takes to fill
    /// at the run's rate (a datagram of `size` bytes takes about `size` + 768 bytes of
    /// buffer).
    fn recv_wait_for(&self, p: &RunParams, size: usize) -> Duration {
        let sockets = self.peers.len() + self.client_rx.iter().map(Vec::len).sum::<usize>();
        let buffer = self
            .peers
            .first()
            .map(|s| SockRef::from(s).recv_buffer_size().unwrap_or(0))
            .or_else(|| {
                self.client_rx
                    .iter()
                    .flatten()
                    .next()
                    .map(|rx| match &rx.reader {
                        Reader::Udp(s) => SockRef::from(s).recv_buffer_size().unwrap_or(0),
                        Reader::Tcp(_) => 0,
                    })
            })
            .unwrap_or(0);
        let per_socket = p.rate * self.flows.len() as f64 / sockets.max(1) as f64;
        let fill = buffer as f64 / ((size + 768) as f64 * per_socket.max(1.0));
        let wait = self.recv_wait.min(Duration::from_secs_f64(fill / 4.0));
        // Shorter than a sleep's overshoot: block for each datagram instead.
        if wait < Duration::from_micros(50) {
            Duration::ZERO
        } else {
            wait
        }
    }

    /// The send path in use.
    pub fn send_path(&self) -> SendPath {
        self.path
    }

    /// How often allocations, permissions and channels are refreshed, during a run and
    /// by [`Session::maintain`] (default two minutes; lifetimes are 300 s and more).
    pub fn set_refresh_every(&mut self, every: Duration) {
        self.refresh_every = every.max(Duration::from_millis(10));
    }

    /// Number of flows.
    pub fn clients(&self) -> usize {
        self.flows.len()
    }

    /// Refreshes every allocation and its channel or permission if the last refresh is
    /// older than two minutes (call between runs).
    pub fn maintain(&mut self) -> Result<(), ClientError> {
        if self.last_refresh.elapsed() >= self.refresh_every {
            for f in &mut self.flows {
                f.refresh()?;
            }
            self.last_refresh = Instant::now();
        }
        Ok(())
    }

    /// Runs one offered load. `tick` is called about every 100 ms with the fraction of
    /// the sending time done and the packets delivered so far.
    pub fn run(&mut self, p: &RunParams, tick: &dyn Fn(f64, u64)) -> LoadReport {
        self.run_id = self.run_id.wrapping_add(1);
        let run_id = self.run_id;
        let size = p.size.max(MIN_PAYLOAD);
        let stream = self.transport.is_stream();
        for f in &mut self.flows {
            f.build_frame(size, stream);
        }
        let n = self.flows.len();
        let epoch = self.epoch;
        let reflector_drops = self.reflector.as_ref().map(|r| {
            r.slot.store(recv_slot(size), Ordering::Relaxed);
            r.drops.load(Ordering::Relaxed)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let delivered_live = Arc::new(AtomicU64::new(0));

        let (stats, send) = thread::scope(|scope| {
            let mut receivers = Vec::new();
            // The run's epoch on the kernel's receive-time clock (CLOCK_REALTIME).
            let epoch_rt = self.rx_info.then(|| {
                let rt = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                rt.saturating_sub(epoch.elapsed())
            });
            let common = RecvCommon {
                batch: p.recv_batch,
                slot: recv_slot(size),
                wait: self.recv_wait_for(p, size),
                flows: n,
                run_id,
                epoch,
                epoch_rt,
                stop: Arc::clone(&stop),
                live: Arc::clone(&delivered_live),
            };
            for (peer, drops) in self.peers.iter().zip(&mut self.peer_drops) {
                let c = common.clone();
                receivers.push(scope.spawn(move || receive(peer, drops, &c)));
            }
            // Client to client: the transactions of a refresh during the run find their
            // responses in the inboxes the receiving threads fill.
            for (f, inbox) in self.flows.iter_mut().zip(&self.inboxes) {
                if let Some(c) = &mut f.client {
                    c.set_inbox(Some(Arc::clone(inbox)));
                }
            }
            let inboxes = &self.inboxes;
            for group in &mut self.client_rx {
                let c = common.clone();
                receivers.push(scope.spawn(move || receive_clients(group, inboxes, &c)));
            }
            let flows = &mut self.flows;
            let out = Out {
                path: self.path,
                shared: self.shared.as_ref(),
                dest: self.dest,
                batch: self.send_batch,
                gso: self.gso,
                tick: self.tick,
                stream: self.transport.is_stream(),
            };
            let every = self.refresh_every;
            let sender = scope.spawn(move || send_loop(flows, &out, p, run_id, epoch, every));
            let start = Instant::now();
            while !sender.is_finished() {
                thread::sleep(Duration::from_millis(100));
                let frac = start.elapsed().as_secs_f64() / p.duration.as_secs_f64().max(1e-9);
                tick(frac.min(1.0), delivered_live.load(Ordering::Relaxed));
            }
            let send = sender.join().unwrap_or_default();
            // Stragglers get up to the drain time; a run whose every datagram has
            // arrived ends at once (duplicates count, so a duplicate can end it one
            // datagram early).
            let sent: u64 = send.sent.iter().sum();
            let drain_end = Instant::now() + p.drain;
            while delivered_live.load(Ordering::Relaxed) < sent {
                let left = drain_end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                thread::sleep(left.min(Duration::from_millis(2)));
            }
            stop.store(true, Ordering::Relaxed);
            let mut total = RecvStats::new(n);
            for r in receivers {
                if let Ok(s) = r.join() {
                    total.merge(s);
                }
            }
            (total, send)
        });
        for f in &mut self.flows {
            if let Some(c) = &mut f.client {
                c.set_inbox(None);
            }
        }
        let mut stats = stats;
        if let (Some(r), Some(before)) = (&self.reflector, reflector_drops) {
            stats.reflector_drops = Some(r.drops.load(Ordering::Relaxed).saturating_sub(before));
        }
        self.report(p, size, &stats, &send)
    }

    fn report(&self, p: &RunParams, size: usize, r: &RecvStats, s: &SendStats) -> LoadReport {
        let n = self.flows.len();
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        let sent: u64 = s.sent.iter().sum();
        let delivered: u64 = r.flows.iter().map(|f| f.received).sum();
        let lost: u64 = s
            .sent
            .iter()
            .zip(&r.flows)
            .map(|(s, f)| s.saturating_sub(f.received))
            .sum();
        let latency = Latency::from_hist(&r.hist);
        let ratios: Vec<f64> = s
            .sent
            .iter()
            .zip(&r.flows)
            .map(|(&s, f)| {
                if s == 0 {
                    1.0
                } else {
                    f.received as f64 / s as f64
                }
            })
            .collect();
        let sum: f64 = ratios.iter().sum();
        let sum2: f64 = ratios.iter().map(|x| x * x).sum();
        let jain = if sum2 > 0.0 {
            sum * sum / (ratios.len() as f64 * sum2)
        } else {
            0.0
        };
        let jitters: Vec<f64> = r.flows.iter().map(|f| f.jitter_ns / 1000.0).collect();
        let target_pps = p.rate * n as f64;
        let offered_pps = sent as f64 / secs;
        let cpu = (s.cpu + r.cpu).as_secs_f64();
        LoadReport {
            target: self.target_name.clone(),
            mode: format!("{:?}", self.mode).to_lowercase(),
            shape: format!("{:?}", p.shape).to_lowercase(),
            clients: n,
            size,
            rate_per_client: p.rate,
            target_pps,
            duration_s: secs,
            sent,
            offered_pps,
            delivered,
            delivered_pps: delivered as f64 / secs,
            delivered_mbps: delivered as f64 * size as f64 * 8.0 / secs / 1e6,
            lost,
            loss_pct: if sent == 0 {
                0.0
            } else {
                100.0 * lost as f64 / sent as f64
            },
            reordered: r.flows.iter().map(|f| f.reordered).sum(),
            duplicates: r.flows.iter().map(|f| f.duplicates).sum(),
            send_errors: s.errors,
            refreshes: s.refreshes,
            latency,
            jitter_us_mean: if jitters.is_empty() {
                0.0
            } else {
                jitters.iter().sum::<f64>() / jitters.len() as f64
            },
            jitter_us_max: jitters.iter().copied().fold(0.0, f64::max),
            fairness: Fairness {
                min_delivered: r.flows.iter().map(|f| f.received).min().unwrap_or(0),
                max_delivered: r.flows.iter().map(|f| f.received).max().unwrap_or(0),
                jain_index: jain,
            },
            ceiling_pps: None,
            // Over a stream, a sender that spent much of its time in writes was held
            // back by the server (TCP backpressure), not by itself.
            generator_bound: target_pps > 0.0
                && offered_pps < 0.9 * target_pps.min(p.max_packets as f64 / secs)
                && s.write_wait.as_secs_f64() < 0.1 * secs,
            send_path: if self.transport.is_stream() {
                "stream".to_owned()
            } else {
                self.path.name().to_owned()
            },
            transport: self.transport.name().to_owned(),
            to: match self.to {
                To::Peers => "peers",
                To::Clients => "clients",
            }
            .to_owned(),
            write_wait_pct: 100.0 * s.write_wait.as_secs_f64() / secs,
            gso: self.gso,
            tick_us: self.tick.as_secs_f64() * 1e6,
            send_batch_mean: if s.calls == 0 {
                0.0
            } else {
                sent as f64 / s.calls as f64
            },
            generator_cpu_pct: 100.0 * cpu / secs,
            send_cpu_pct: 100.0 * s.cpu.as_secs_f64() / secs,
            generator_cpu_us_per_pkt: if sent == 0 {
                0.0
            } else {
                cpu * 1e6 / sent as f64
            },
            receiver_drops: r.drops,
            reflector_drops: r.reflector_drops,
            recv_batch_mean: if r.calls == 0 {
                0.0
            } else {
                delivered as f64 / r.calls as f64
            },
        }
    }

    /// Deletes every allocation (Refresh lifetime 0). Stops at the first timeout: the
    /// server is gone and the rest would only wait too.
    pub fn close(&mut self) {
        for f in &mut self.flows {
            if let Some(c) = &mut f.client {
                if let Err(ClientError::Timeout(_)) = c.close() {
                    break;
                }
            }
        }
        for f in &mut self.flows {
            f.client = None;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

impl LoadReport {
    /// Applies a calibrated ceiling: marks the report generator-bound when delivery is
    /// within 10 % of it.
    pub fn apply_ceiling(&mut self, ceiling: Option<f64>) {
        if let Some(c) = ceiling {
            self.ceiling_pps = Some(c);
            if self.delivered_pps >= 0.9 * c {
                self.generator_bound = true;
            }
        }
    }
}

#[derive(Default)]
struct SendStats {
    sent: Vec<u64>,
    refreshes: u64,
    errors: u64,
    /// Send system calls.
    calls: u64,
    /// Time spent in stream writes.
    write_wait: Duration,
    elapsed: Duration,
    /// The sending thread's CPU time.
    cpu: Duration,
}

/// Where and how the sending thread sends.
struct Out<'s> {
    path: SendPath,
    shared: Option<&'s UdpSocket>,
    dest: SocketAddr,
    batch: usize,
    gso: bool,
    tick: Duration,
    /// TCP or TLS: frames are written through each flow's client.
    stream: bool,
}

/// Stamps every queued datagram with the current time (the last 8 bytes of each head)
/// and sends the batch on `socket`.
fn flush(
    batch: &mut SendBuffer<'_>,
    socket: Option<&UdpSocket>,
    epoch: Instant,
    stats: &mut SendStats,
) {
    if batch.is_empty() {
        return;
    }
    let Some(socket) = socket else {
        stats.errors += batch.len() as u64;
        batch.clear();
        return;
    };
    let stamp = (epoch.elapsed().as_nanos() as u64).to_be_bytes();
    for h in batch.heads_mut() {
        let n = h.len();
        h[n - 8..].copy_from_slice(&stamp);
    }
    let o = batch.send(socket);
    stats.errors += o.errors as u64;
    stats.calls += o.calls as u64;
}

fn send_loop(
    flows: &mut [Flow],
    out: &Out<'_>,
    p: &RunParams,
    run_id: u16,
    epoch: Instant,
    every: Duration,
) -> SendStats {
    let cpu0 = turnpike_udp::sys::cpu_time(true);
    let n = flows.len();
    let rate = p.rate.max(1e-3);
    let (burst, interval_ns) = match p.shape {
        Shape::Steady => (1u64, 1e9 / rate),
        Shape::Bursty => {
            let burst = (rate / f64::from(p.fps.max(1))).round().max(1.0);
            (burst as u64, 1e9 * burst / rate)
        }
    };
    let interval_ns = interval_ns.max(1.0) as u64;
    let tick_ns = out.tick.as_nanos() as u64;
    // Frames one flow may send in one pass: a few, or what a tick holds (up to a GSO
    // message's worth).
    let max_frames = (tick_ns / interval_ns + 1).clamp(8, 64);
    let start = epoch.elapsed().as_nanos() as u64;
    let end = start + p.duration.as_nanos() as u64;
    // Spread the flows' first sends over one interval.
    let mut next: Vec<u64> = (0..n as u64)
        .map(|i| start + interval_ns * i / n.max(1) as u64)
        .collect();
    let mut refresh_at: Vec<Instant> = (0..n)
        .map(|i| Instant::now() + every + every / 10 * (i % 10) as u32 / 10)
        .collect();
    let mut stats = SendStats {
        sent: vec![0; n],
        ..SendStats::default()
    };
    // Every datagram's tail: the payload's filler and any padding, all zeros.
    let zeros = vec![0u8; MAX_PAYLOAD + 64];
    let mut batch = SendBuffer::new(out.batch, HEAD_SLOT);
    batch.set_gso(out.gso);
    let shared = out.path == SendPath::Shared;
    let dest = shared.then_some(out.dest);
    // A stream flow's frames due in one pass, written at once, and where their send
    // times go.
    let mut sbuf: Vec<u8> = Vec::new();
    let mut stamp_at: Vec<usize> = Vec::new();
    let mut total = 0u64;
    let mut done = false;
    let begin = Instant::now();
    while !done {
        let now = epoch.elapsed().as_nanos() as u64;
        if now >= end {
            break;
        }
        let mut earliest = u64::MAX;
        let wall = Instant::now();
        for (i, f) in flows.iter_mut().enumerate() {
            // Catch up at most a few frames per pass (a tick's worth) so one late flow
            // cannot starve the others or the end-of-run check; a generator that falls
            // behind shows it as offered < target.
            let mut frames = 0;
            let head_len = f.payload_at + MIN_PAYLOAD;
            while next[i] <= now && frames < max_frames && !done {
                frames += 1;
                for _ in 0..burst {
                    if total >= p.max_packets {
                        done = true;
                        break;
                    }
                    let seq = stats.sent[i];
                    if out.stream {
                        let at = sbuf.len();
                        sbuf.extend_from_slice(&f.frame);
                        if let Some(pl) = sbuf.get_mut(at + f.payload_at..) {
                            write_fields(pl, run_id, i, seq);
                        }
                        stamp_at.push(at + f.payload_at + 16);
                    } else if out.path == SendPath::Plain {
                        let pl = &mut f.frame[f.payload_at..];
                        write_fields(pl, run_id, i, seq);
                        let stamp = epoch.elapsed().as_nanos() as u64;
                        pl[16..24].copy_from_slice(&stamp.to_be_bytes());
                        stats.calls += 1;
                        match &f.socket {
                            Some(s) if s.send(&f.frame).is_ok() => {}
                            _ => stats.errors += 1,
                        }
                    } else {
                        let (head, rest) = f.frame.split_at(head_len.min(f.frame.len()));
                        let tail = &zeros[..rest.len().min(zeros.len())];
                        if let Some(h) = batch.push(head, tail, dest, f.src) {
                            if let Some(pl) = h.get_mut(f.payload_at..) {
                                write_fields(pl, run_id, i, seq);
                            }
                        }
                        if batch.is_full() {
                            let socket = if shared {
                                out.shared
                            } else {
                                f.socket.as_ref()
                            };
                            flush(&mut batch, socket, epoch, &mut stats);
                        }
                    }
                    stats.sent[i] += 1;
                    total += 1;
                }
                next[i] += interval_ns;
            }
            if out.stream {
                if let (false, Some(c)) = (sbuf.is_empty(), f.client.as_mut()) {
                    let stamp = (epoch.elapsed().as_nanos() as u64).to_be_bytes();
                    for &at in &stamp_at {
                        if let Some(b) = sbuf.get_mut(at..at + 8) {
                            b.copy_from_slice(&stamp);
                        }
                    }
                    let t0 = Instant::now();
                    stats.calls += 1;
                    if c.send_raw(&sbuf).is_err() {
                        stats.errors += stamp_at.len() as u64;
                    }
                    stats.write_wait += t0.elapsed();
                }
                sbuf.clear();
                stamp_at.clear();
            } else if !shared {
                flush(&mut batch, f.socket.as_ref(), epoch, &mut stats);
            }
            earliest = earliest.min(next[i]);
            if done {
                break;
            }
            if f.client.is_some() && wall >= refresh_at[i] {
                refresh_at[i] += every;
                stats.refreshes += 1;
                if f.refresh().is_err() {
                    stats.errors += 1;
                }
            }
        }
        if shared {
            flush(&mut batch, out.shared, epoch, &mut stats);
        }
        // The next pass: when the next datagram is due, but not before a tick after
        // this pass began (what is due by then goes out together).
        let pass_end = epoch.elapsed().as_nanos() as u64;
        let wait = earliest
            .max(now + tick_ns)
            .min(end)
            .saturating_sub(pass_end);
        if wait > 60_000 {
            // Sleeps overshoot by the timer slack (50 µs by default).
            thread::sleep(Duration::from_nanos(wait - 50_000));
        } else if wait > 0 {
            thread::yield_now();
        }
    }
    stats.elapsed = begin.elapsed();
    stats.cpu = turnpike_udp::sys::cpu_time(true).saturating_sub(cpu0);
    stats
}

/// Writes the payload's magic, run id, flow id and sequence number (`pl` is at least
/// [`MIN_PAYLOAD`] bytes: every frame is built so).
fn write_fields(pl: &mut [u8], run_id: u16, flow: usize, seq: u64) {
    if pl.len() < MIN_PAYLOAD {
        return;
    }
    pl[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    pl[2..4].copy_from_slice(&run_id.to_be_bytes());
    pl[4..8].copy_from_slice(&(flow as u32).to_be_bytes());
    pl[8..16].copy_from_slice(&seq.to_be_bytes());
}

#[derive(Clone, Default)]
struct FlowRecv {
    received: u64,
    duplicates: u64,
    reordered: u64,
    max_seq: Option<u64>,
    seen: Vec<u64>,
    jitter_ns: f64,
    last_transit: Option<i64>,
}

struct RecvStats {
    flows: Vec<FlowRecv>,
    hist: Histogram<u64>,
    /// The receiving threads' CPU time.
    cpu: Duration,
    /// Datagrams the bench's receiving sockets dropped during the run.
    drops: u64,
    /// Datagrams the reflector's socket dropped during the run.
    reflector_drops: Option<u64>,
    /// Receive system calls.
    calls: u64,
}

impl RecvStats {
    fn new(n: usize) -> Self {
        Self {
            flows: vec![FlowRecv::default(); n],
            hist: new_hist(),
            cpu: Duration::ZERO,
            drops: 0,
            reflector_drops: None,
            calls: 0,
        }
    }

    fn merge(&mut self, other: Self) {
        for (a, b) in self.flows.iter_mut().zip(other.flows) {
            if b.received > 0 || b.duplicates > 0 {
                *a = b;
            }
        }
        let _ = self.hist.add(&other.hist);
        self.cpu += other.cpu;
        self.calls += other.calls;
        self.drops += other.drops;
    }

    fn record(&mut self, flow: usize, seq: u64, sent_ns: u64, now_ns: u64) {
        let Some(f) = self.flows.get_mut(flow) else {
            return;
        };
        let word = (seq / 64) as usize;
        if word >= f.seen.len() {
            if word > 1 << 24 {
                return; // more than a billion packets in one flow: not ours
            }
            f.seen.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if f.seen[word] & bit != 0 {
            f.duplicates += 1;
            return;
        }
        f.seen[word] |= bit;
        f.received += 1;
        match f.max_seq {
            Some(m) if seq < m => f.reordered += 1,
            _ => f.max_seq = Some(seq),
        }
        // RFC 3550 §6.4.1: J += (|D| - J) / 16, D = difference of transit times.
        let transit = now_ns as i64 - sent_ns as i64;
        if let Some(last) = f.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            f.jitter_ns += (d - f.jitter_ns) / 16.0;
        }
        f.last_transit = Some(transit);
        self.hist
            .saturating_record(now_ns.saturating_sub(sent_ns).max(1));
    }
}

/// What every receiving thread of a run needs.
#[derive(Clone)]
struct RecvCommon {
    batch: usize,
    /// Bytes per datagram buffer.
    slot: usize,
    /// How long to let datagrams gather after a read that did not fill the batch (zero:
    /// block until the next datagram).
    wait: Duration,
    flows: usize,
    run_id: u16,
    epoch: Instant,
    /// The epoch in kernel receive time, when the sockets report receive times.
    epoch_rt: Option<Duration>,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
}

impl RecvCommon {
    /// Records the datagrams of the last receive into `batch` (payloads from `at` on
    /// into each datagram; see [`RecvCommon::record`]).
    fn record_batch(&self, batch: &RecvBatch, count: usize, stats: &mut RecvStats) -> u64 {
        // Without kernel receive times, one receive time for the whole batch: the batch
        // is taken in one syscall, so the error is the time the kernel spent copying the
        // earlier datagrams out.
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut n = 0;
        for i in 0..count {
            let at = match (batch.stamp(i), self.epoch_rt) {
                (Some(t), Some(e)) => t.saturating_sub(e).as_nanos() as u64,
                _ => now,
            };
            n += u64::from(self.record(batch.packet(i), at, stats));
        }
        n
    }

    /// Records one payload received at `at` (ns since the epoch) if it is this run's.
    fn record(&self, b: &[u8], at: u64, stats: &mut RecvStats) -> bool {
        if b.len() < MIN_PAYLOAD {
            return false;
        }
        let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        let be64 = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        if be16(0) != MAGIC || be16(2) != self.run_id {
            return false;
        }
        let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        stats.record(flow, be64(8), be64(16), at);
        true
    }

    /// Adds what a receiving thread counted since its last call to the run's live total
    /// (once per receive call: an atomic add beside a system call).
    fn publish(&self, pending: &mut u64) {
        if *pending > 0 {
            self.live.fetch_add(*pending, Ordering::Relaxed);
            *pending = 0;
        }
    }
}

/// A peer socket's receiving thread; `drops` is the socket's drop counter as last seen,
/// updated.
fn receive(socket: &UdpSocket, drops: &mut u32, c: &RecvCommon) -> RecvStats {
    let cpu0 = turnpike_udp::sys::cpu_time(true);
    let mut stats = RecvStats::new(c.flows);
    let mut batch = RecvBatch::with_capacity(c.batch, 0, c.slot, 0);
    if c.epoch_rt.is_some() {
        batch = batch.with_rx_info();
    }
    let mut pending = 0u64;
    while !c.stop.load(Ordering::Relaxed) {
        stats.calls += 1;
        let got = if c.wait.is_zero() {
            batch.recv_wait(socket)
        } else {
            batch.recv_now(socket)
        };
        let Ok(count) = got else {
            continue;
        };
        pending += c.record_batch(&batch, count, &mut stats);
        c.publish(&mut pending);
        if !c.wait.is_zero() && count < c.batch {
            thread::sleep(c.wait);
        }
    }
    c.publish(&mut pending);
    if let Some(d) = batch.drops() {
        stats.drops += u64::from(d.saturating_sub(*drops));
        *drops = (*drops).max(d);
    }
    stats.cpu = turnpike_udp::sys::cpu_time(true).saturating_sub(cpu0);
    stats
}

/// The payload of a frame a client received from the server: ChannelData's data, a Data
/// indication's DATA; `None` for anything else.
fn client_payload(frame: &[u8]) -> Option<&[u8]> {
    match frame.first()? {
        0x40..=0x7F => {
            let len = usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]));
            frame.get(CHANNEL_DATA_HEADER_LEN..CHANNEL_DATA_HEADER_LEN + len)
        }
        0x00..=0x3F => {
            let msg = turnpike_stun::Message::new_checked(frame).ok()?;
            let t = msg.message_type();
            if t.method != turnpike_stun::Method::DATA
                || t.class != turnpike_stun::Class::Indication
            {
                return None;
            }
            let data = msg.get::<turnpike_stun::attr::Data>().ok()??.0;
            // DATA borrows from the message, not from `frame`'s lifetime: find its bytes
            // in `frame`.
            let start = (data.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
            frame.get(start..start + data.len())
        }
        _ => None,
    }
}

/// Whether a frame is a STUN response (for a transaction's inbox).
fn is_stun_response(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| *b < 0x40)
        && turnpike_stun::Message::new_checked(frame).is_ok_and(|m| {
            matches!(
                m.message_type().class,
                turnpike_stun::Class::Success | turnpike_stun::Class::Error
            )
        })
}

/// A client-to-client receiving thread: reads its group of clients' connections
/// (ChannelData or Data indications from the partner; responses go to the client's
/// inbox).
fn receive_clients(group: &mut [ClientRx], inboxes: &[Arc<Inbox>], c: &RecvCommon) -> RecvStats {
    use std::io::Read;
    let cpu0 = turnpike_udp::sys::cpu_time(true);
    let mut stats = RecvStats::new(c.flows);
    let mut batch = RecvBatch::with_capacity(c.batch, 0, c.slot.max(2048), 0);
    if c.epoch_rt.is_some() {
        batch = batch.with_rx_info();
    }
    let Ok(mut poll) = turnpike_udp::Poller::with_capacity(group.len().max(1)) else {
        return stats;
    };
    for (k, rx) in group.iter().enumerate() {
        let added = match &rx.reader {
            Reader::Udp(s) => poll.add(s, k as u64),
            Reader::Tcp(s) => poll.add(s, k as u64),
        };
        if added.is_err() {
            return stats;
        }
    }
    // Only UDP gets kernel receive times: a stream's reads wait for nothing.
    let streams = group.iter().any(|rx| matches!(rx.reader, Reader::Tcp(_)));
    let wait = if streams { Duration::ZERO } else { c.wait };
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pending = 0u64;
    let mut ready: Vec<u64> = Vec::new();
    while !c.stop.load(Ordering::Relaxed) {
        let timeout = if wait.is_zero() {
            Duration::from_millis(20)
        } else {
            Duration::ZERO
        };
        ready.clear();
        match poll.wait(Some(timeout)) {
            Ok(_) => ready.extend(poll.tokens()),
            Err(_) => break,
        }
        for &k in &ready {
            let Some(rx) = group.get_mut(k as usize) else {
                continue;
            };
            let inbox = inboxes.get(rx.flow);
            match &rx.reader {
                Reader::Udp(s) => loop {
                    stats.calls += 1;
                    let count = batch.recv_now(s).unwrap_or(0);
                    let now = c.epoch.elapsed().as_nanos() as u64;
                    for i in 0..count {
                        let frame = batch.packet(i);
                        if let Some(pl) = client_payload(frame) {
                            let at = match (batch.stamp(i), c.epoch_rt) {
                                (Some(t), Some(e)) => t.saturating_sub(e).as_nanos() as u64,
                                _ => now,
                            };
                            pending += u64::from(c.record(pl, at, &mut stats));
                        } else if let (true, Some(inbox)) = (is_stun_response(frame), inbox) {
                            inbox.put(frame.to_vec());
                        }
                    }
                    if let Some(d) = batch.drops() {
                        stats.drops += u64::from(d.saturating_sub(rx.drops));
                        rx.drops = rx.drops.max(d);
                    }
                    if count < c.batch {
                        break;
                    }
                },
                Reader::Tcp(s) => {
                    stats.calls += 1;
                    // Readable: one read does not block.
                    let mut s = s;
                    match s.read(&mut chunk) {
                        Ok(n) if n > 0 => rx.buf.extend_from_slice(&chunk[..n]),
                        _ => continue,
                    }
                    let now = c.epoch.elapsed().as_nanos() as u64;
                    let mut used = 0;
                    while let Framing::Frame(f) = next_frame(&rx.buf[used..]) {
                        let frame = &rx.buf[used..used + f.len()];
                        used += f.len();
                        if let Some(pl) = client_payload(frame) {
                            pending += u64::from(c.record(pl, now, &mut stats));
                        } else if let (true, Some(inbox)) = (is_stun_response(frame), inbox) {
                            inbox.put(frame.to_vec());
                        }
                    }
                    rx.buf.drain(..used);
                    if matches!(next_frame(&rx.buf), Framing::Garbage) {
                        // Not STUN or ChannelData: the stream is lost.
                        rx.buf.clear();
                    }
                }
            }
        }
        c.publish(&mut pending);
        if !wait.is_zero() {
            thread::sleep(wait);
        }
    }
    c.publish(&mut pending);
    stats.cpu = turnpike_udp::sys::cpu_time(true).saturating_sub(cpu0);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rate: f64, secs: f64) -> RunParams {
        RunParams {
            rate,
            size: 100,
            duration: Duration::from_secs_f64(secs),
            shape: Shape::Steady,
            fps: 30,
            drain: Duration::from_millis(100),
            max_packets: 1_000_000,
            recv_batch: 16,
        }
    }

    #[test]
    fn reflector_run_has_no_loss() {
        let mut s = Session::setup(
            &Target::Reflector { cpu: Some(0) },
            3,
            2,
            Mode::Channel,
            None,
            &|_| {},
        )
        .unwrap();
        let r = s.run(&params(100.0, 0.5), &|_, _| {});
        assert!(r.sent >= 140 && r.sent <= 160, "{r:?}");
        assert_eq!(r.lost, 0, "{r:?}");
        assert_eq!(r.duplicates, 0);
        assert!(r.latency.p50_us > 0.0);
        assert!((r.fairness.jain_index - 1.0).abs() < 1e-9);
        // A second run on the same session ignores nothing and loses nothing.
        let r2 = s.run(
            &RunParams {
                shape: Shape::Bursty,
                ..params(300.0, 0.3)
            },
            &|_, _| {},
        );
        assert_eq!(r2.lost, 0, "{r2:?}");
    }

    #[test]
    fn record_counts_duplicates_and_reordering() {
        let mut s = RecvStats::new(1);
        for (seq, t) in [(0, 10), (2, 30), (1, 20), (2, 30)] {
            s.record(0, seq, t, t + 5);
        }
        let f = &s.flows[0];
        assert_eq!((f.received, f.duplicates, f.reordered), (3, 1, 1));
    }
}
