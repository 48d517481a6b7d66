//! The offered-load engine: N TURN clients send paced traffic through the relay to peer
//! sockets owned by this same process, so one-way latency is measured on one clock.
//!
//! Direction: **client → relay → peer only.** Each client allocates, binds a channel
//! (or installs a permission for Send indications) to a peer socket of the bench, and
//! sends; the peer socket receives plain UDP from the relayed address. Nothing is echoed,
//! so every figure is for one direction and one pass through the relay.
//!
//! Hot path: plain blocking `send` on connected sockets from one pacing thread (no
//! `sendmmsg`: each flow has its own socket, so a batch would rarely share one), and one
//! receiving thread per peer socket using `recvmmsg` (see [`crate::mmsg`]).
//!
//! Payload layout (at least [`MIN_PAYLOAD`] bytes, big endian): magic `0x5450` (2 bytes),
//! run id (2), flow id (4), sequence number (8), send time in ns since the run's shared
//! `Instant` (8), then filler.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use socket2::SockRef;
use turnpike_stun::{CHANNEL_DATA_HEADER_LEN, ChannelNumber, TransactionId};

use crate::client::{ClientError, Credentials, TurnClient, encode_send_indication};
use crate::mmsg::RecvBatch;

/// The smallest payload: magic, run id, flow id, sequence number, send time.
pub const MIN_PAYLOAD: usize = 24;
const MAGIC: u16 = 0x5450;
/// Socket buffer size asked for on every data socket.
const SOCKET_BUFFER: usize = 4 << 20;
/// How often a long run refreshes each allocation, permission and channel.
const REFRESH_EVERY: Duration = Duration::from_secs(120);
/// The channel every client binds (channels are per allocation).
const CHANNEL: u16 = 0x4000;

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
    /// How long to keep receiving after the last send.
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
}

struct Flow {
    socket: UdpSocket,
    client: Option<TurnClient>,
    peer: SocketAddr,
    mode: Mode,
    /// A prebuilt frame; the payload sits at `payload_at..`.
    frame: Vec<u8>,
    payload_at: usize,
}

impl Flow {
    fn build_frame(&mut self, size: usize) {
        match self.mode {
            Mode::Channel => {
                self.frame = vec![0u8; CHANNEL_DATA_HEADER_LEN + size];
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

/// The local address that routes to `to` (no packet is sent).
fn local_ip_towards(to: SocketAddr) -> std::io::Result<IpAddr> {
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(bind)?;
    s.connect(to)?;
    Ok(s.local_addr()?.ip())
}

struct Reflector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Reflector {
    fn start(peers: Vec<SocketAddr>, cpu: Option<usize>) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        set_buffers(&socket);
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            let _ = pinned_tx.send(cpu.map(crate::mmsg::pin_current_thread));
            let mut batch = RecvBatch::new(32, 8192 + 64);
            while !stop2.load(Ordering::Relaxed) {
                let Ok(count) = batch.recv(&socket) else {
                    continue;
                };
                for i in 0..count {
                    let pkt = batch.packet(i);
                    let data = &pkt[CHANNEL_DATA_HEADER_LEN.min(pkt.len())..];
                    let flow = data
                        .get(4..8)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    let peer = peers[flow as usize % peers.len()];
                    let _ = socket.send_to(data, peer);
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
            handle: Some(handle),
        })
    }
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
    run_id: u16,
    last_refresh: Instant,
    refresh_every: Duration,
    _reflector: Option<Reflector>,
    epoch: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target_name)
            .field("flows", &self.flows.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Sets up `clients` flows against `target`: allocations, channels or permissions,
    /// and `peers` peer sockets (flow `i` goes to peer `i % peers`).
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
        let peers = peers.clamp(1, clients.max(1));
        let peer_ip = match (peer_ip, target) {
            (Some(ip), _) => ip,
            (None, Target::Turn { server, .. }) => local_ip_towards(*server)?,
            (None, Target::Reflector { .. }) => IpAddr::from([127, 0, 0, 1]),
        };
        let mut peer_sockets = Vec::with_capacity(peers);
        for _ in 0..peers {
            let s = UdpSocket::bind(SocketAddr::new(peer_ip, 0))?;
            set_buffers(&s);
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            peer_sockets.push(s);
        }
        let peer_addrs: Vec<SocketAddr> = peer_sockets
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<Result<_, _>>()?;
        let mut flows: Vec<Flow> = Vec::with_capacity(clients);
        let (reflector, target_name) = match target {
            Target::Turn { server, .. } => (None, server.to_string()),
            Target::Reflector { cpu } => (
                Some(Reflector::start(peer_addrs.clone(), *cpu)?),
                "reflector".into(),
            ),
        };
        for i in 0..clients {
            let peer = peer_addrs[i % peers];
            let made = (|| -> Result<Flow, ClientError> {
                Ok(match target {
                    Target::Turn {
                        server,
                        credentials,
                    } => {
                        let mut c = TurnClient::connect(*server, credentials)?;
                        c.allocate(None)?;
                        let bound = match mode {
                            Mode::Channel => c.channel_bind(chan(), peer),
                            Mode::Send => c.create_permission(peer),
                        };
                        if let Err(e) = bound {
                            let _ = c.close();
                            return Err(e);
                        }
                        let socket = c.socket().try_clone()?;
                        Flow {
                            socket,
                            client: Some(c),
                            peer,
                            mode,
                            frame: Vec::new(),
                            payload_at: 0,
                        }
                    }
                    Target::Reflector { .. } => {
                        let socket = UdpSocket::bind("127.0.0.1:0")?;
                        if let Some(r) = &reflector {
                            socket.connect(r.addr)?;
                        }
                        Flow {
                            socket,
                            client: None,
                            peer,
                            mode: Mode::Channel,
                            frame: Vec::new(),
                            payload_at: 0,
                        }
                    }
                })
            })();
            let flow = match made {
                Ok(flow) => flow,
                Err(e) => {
                    // Delete what was allocated so far instead of leaving it to expire.
                    for f in &mut flows {
                        if let Some(c) = &mut f.client {
                            if let Err(ClientError::Timeout(_)) = c.close() {
                                break;
                            }
                        }
                    }
                    return Err(e);
                }
            };
            set_buffers(&flow.socket);
            flows.push(flow);
            progress(i + 1);
        }
        Ok(Self {
            flows,
            peers: peer_sockets,
            target_name,
            mode: if reflector.is_some() {
                Mode::Channel
            } else {
                mode
            },
            run_id: 0,
            last_refresh: Instant::now(),
            refresh_every: REFRESH_EVERY,
            _reflector: reflector,
            epoch: Instant::now(),
        })
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
        for f in &mut self.flows {
            f.build_frame(size);
        }
        let n = self.flows.len();
        let epoch = self.epoch;
        let stop = Arc::new(AtomicBool::new(false));
        let delivered_live = Arc::new(AtomicU64::new(0));

        let (stats, send) = thread::scope(|scope| {
            let mut receivers = Vec::new();
            for peer in &self.peers {
                let stop = Arc::clone(&stop);
                let live = Arc::clone(&delivered_live);
                receivers
                    .push(scope.spawn(move || {
                        receive(peer, p.recv_batch, n, run_id, epoch, &stop, &live)
                    }));
            }
            let flows = &mut self.flows;
            let every = self.refresh_every;
            let sender = scope.spawn(move || send_loop(flows, p, run_id, epoch, every));
            let start = Instant::now();
            while !sender.is_finished() {
                thread::sleep(Duration::from_millis(100));
                let frac = start.elapsed().as_secs_f64() / p.duration.as_secs_f64().max(1e-9);
                tick(frac.min(1.0), delivered_live.load(Ordering::Relaxed));
            }
            let send = sender.join().unwrap_or_default();
            thread::sleep(p.drain);
            stop.store(true, Ordering::Relaxed);
            let mut total = RecvStats::new(n);
            for r in receivers {
                if let Ok(s) = r.join() {
                    total.merge(s);
                }
            }
            (total, send)
        });
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
        let h = &r.hist;
        let us = |ns: u64| ns as f64 / 1000.0;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                min_us: us(h.min()),
                mean_us: h.mean() / 1000.0,
                p50_us: us(h.value_at_quantile(0.5)),
                p90_us: us(h.value_at_quantile(0.9)),
                p99_us: us(h.value_at_quantile(0.99)),
                p999_us: us(h.value_at_quantile(0.999)),
                max_us: us(h.max()),
            }
        };
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
            generator_bound: target_pps > 0.0
                && offered_pps < 0.9 * target_pps.min(p.max_packets as f64 / secs),
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
    elapsed: Duration,
}

fn send_loop(
    flows: &mut [Flow],
    p: &RunParams,
    run_id: u16,
    epoch: Instant,
    every: Duration,
) -> SendStats {
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
    let mut total = 0u64;
    let begin = Instant::now();
    'outer: loop {
        let now = epoch.elapsed().as_nanos() as u64;
        if now >= end {
            break;
        }
        let mut earliest = u64::MAX;
        let wall = Instant::now();
        for (i, f) in flows.iter_mut().enumerate() {
            // Catch up at most a few frames per pass so one late flow cannot starve the
            // others or the end-of-run check; a generator that falls behind shows it as
            // offered < target.
            let mut frames = 0;
            while next[i] <= now && frames < 8 {
                frames += 1;
                for _ in 0..burst {
                    if total >= p.max_packets {
                        break 'outer;
                    }
                    let seq = stats.sent[i];
                    let pl = &mut f.frame[f.payload_at..];
                    pl[0..2].copy_from_slice(&MAGIC.to_be_bytes());
                    pl[2..4].copy_from_slice(&run_id.to_be_bytes());
                    pl[4..8].copy_from_slice(&(i as u32).to_be_bytes());
                    pl[8..16].copy_from_slice(&seq.to_be_bytes());
                    let stamp = epoch.elapsed().as_nanos() as u64;
                    pl[16..24].copy_from_slice(&stamp.to_be_bytes());
                    if f.socket.send(&f.frame).is_err() {
                        stats.errors += 1;
                    }
                    stats.sent[i] += 1;
                    total += 1;
                }
                next[i] += interval_ns;
            }
            earliest = earliest.min(next[i]);
            if f.client.is_some() && wall >= refresh_at[i] {
                refresh_at[i] += every;
                stats.refreshes += 1;
                if f.refresh().is_err() {
                    stats.errors += 1;
                }
            }
        }
        let now = epoch.elapsed().as_nanos() as u64;
        let wait = earliest.min(end).saturating_sub(now);
        if wait > 200_000 {
            thread::sleep(Duration::from_nanos(wait - 100_000));
        } else if wait > 0 {
            thread::yield_now();
        }
    }
    stats.elapsed = begin.elapsed();
    stats
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
}

impl RecvStats {
    fn new(n: usize) -> Self {
        Self {
            flows: vec![FlowRecv::default(); n],
            // 1 ns .. 60 s, 3 significant figures.
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!()),
        }
    }

    fn merge(&mut self, other: Self) {
        for (a, b) in self.flows.iter_mut().zip(other.flows) {
            if b.received > 0 || b.duplicates > 0 {
                *a = b;
            }
        }
        let _ = self.hist.add(&other.hist);
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

fn receive(
    socket: &UdpSocket,
    recv_batch: usize,
    n: usize,
    run_id: u16,
    epoch: Instant,
    stop: &AtomicBool,
    live: &AtomicU64,
) -> RecvStats {
    let mut stats = RecvStats::new(n);
    let mut batch = RecvBatch::new(recv_batch, 8192 + 64);
    let mut pending = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(count) = batch.recv(socket) else {
            continue;
        };
        // One receive time for the whole batch: the batch is taken in one syscall, so
        // the error is the time the kernel spent copying the earlier datagrams out.
        let now = epoch.elapsed().as_nanos() as u64;
        for i in 0..count {
            let b = batch.packet(i);
            if b.len() < MIN_PAYLOAD {
                continue;
            }
            let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
            let be64 = |at: usize| {
                let mut x = [0u8; 8];
                x.copy_from_slice(&b[at..at + 8]);
                u64::from_be_bytes(x)
            };
            if be16(0) != MAGIC || be16(2) != run_id {
                continue;
            }
            let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            stats.record(flow, be64(8), be64(16), now);
            pending += 1;
        }
        if pending >= 64 {
            live.fetch_add(pending, Ordering::Relaxed);
            pending = 0;
        }
    }
    live.fetch_add(pending, Ordering::Relaxed);
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
