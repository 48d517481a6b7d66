//! An event-driven TURN-over-UDP client engine: one thread drives many allocations, each
//! on its own non-blocking socket connected to the server, with at most
//! [`EngineConfig::concurrency`] programs in flight.
//!
//! A slot (one socket, at most one allocation) runs a [`Program`], a short sequence of
//! requests: Allocate (unauthenticated, then signed after the 401), CreatePermission,
//! ChannelBind, Refresh. Each request is retransmitted after [`EngineConfig::rto`] up to
//! [`EngineConfig::transmissions`] times; 438 (stale nonce) is answered with the new nonce,
//! 437 on Allocate moves the slot to a fresh socket (a new local port). A program that
//! fails leaves its slot without a socket, so that the next program starts on a new port
//! whatever the server still holds for the old one. A program that succeeds keeps the
//! socket: an allocation storm reuses it for the next allocation.
//!
//! The long-term key (MD5 of user, realm, password) is derived once per minted
//! credential and realm and shared by all slots ([`Signer`]); REST credentials are minted
//! again every ten minutes. Responses to signed requests must carry a valid
//! MESSAGE-INTEGRITY.
//!
//! Readiness comes from epoll (the default), poll over the sockets in flight, or a
//! busy loop of non-blocking `recv` calls ([`Poller`]). Retransmission timers live in a
//! FIFO queue (every transmission gets the same timeout, so deadlines are in order).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use turnpike_stun::attr::{
    Lifetime, Nonce, Realm, RequestedTransport, TransportProtocol, XorPeerAddress,
    XorRelayedAddress,
};
use turnpike_stun::{
    ChannelNumber, Class, EncodeError, IntegrityKey, Message, MessageType, MessageWriter, Method,
    TransactionId,
};

use crate::client::{ClientError, Credentials, Tids, error_code, long_term_key, sign};
use crate::load::new_hist;
use turnpike_udp::sys;

/// How many times Allocate moves to a fresh socket after a 437 within one program.
pub const MISMATCH_RETRIES: u32 = 8;
/// How many 438 (stale nonce) answers one request may get before the program fails.
pub const STALE_RETRIES: u32 = 3;
/// The first cooldown of a deleted allocation's socket, once the server turned out to
/// keep deleted allocations for a while (437 on a reused socket).
const FIRST_COOLDOWN: Duration = Duration::from_secs(2);
/// The longest cooldown.
const MAX_COOLDOWN: Duration = Duration::from_secs(16);
/// Resting sockets kept at most; past this the oldest is reused early.
const POOL_MAX: usize = 16_384;
/// REST credentials are minted again after this long (they are valid for an hour).
const REMINT_AFTER: Duration = Duration::from_secs(600);
/// The channel every slot binds to its peer (channels are per allocation).
pub const CHANNEL: u16 = 0x4000;
/// Room for one request.
const REQ_MAX: usize = 512;
/// Room for one received datagram.
const RX_MAX: usize = 2048;

/// How the engine waits for responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Poller {
    /// epoll over all sockets (level-triggered, one `recv` per ready socket).
    Epoll,
    /// poll(2) over the sockets with a request in flight, rebuilt every wait.
    Poll,
    /// No waiting at all: a non-blocking `recv` on every socket in flight, in a loop
    /// (the thread never sleeps while anything is in flight).
    Spin,
}

/// A sequence of requests run on one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// Allocate (its 401 round trip included), then delete with Refresh lifetime 0.
    Cycle,
    /// Allocate, then CreatePermission and ChannelBind ([`CHANNEL`]) to the peer.
    Setup,
    /// Refresh the allocation, then its permission and channel binding again.
    Maintain,
    /// Refresh lifetime 0.
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Allocate,
    Permission,
    ChannelBind,
    Refresh,
    Delete,
}

impl Program {
    fn steps(self) -> &'static [Step] {
        match self {
            Self::Cycle => &[Step::Allocate, Step::Delete],
            Self::Setup => &[Step::Allocate, Step::Permission, Step::ChannelBind],
            Self::Maintain => &[Step::Refresh, Step::Permission, Step::ChannelBind],
            Self::Delete => &[Step::Delete],
        }
    }
}

impl Step {
    fn method(self) -> Method {
        match self {
            Self::Allocate => Method::ALLOCATE,
            Self::Permission => Method::CREATE_PERMISSION,
            Self::ChannelBind => Method::CHANNEL_BIND,
            Self::Refresh | Self::Delete => Method::REFRESH,
        }
    }
}

/// What the engine runs against.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The TURN server.
    pub server: SocketAddr,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Programs in flight at most.
    pub concurrency: usize,
    /// How to wait for responses.
    pub poller: Poller,
    /// How long one transmission waits for its response.
    pub rto: Duration,
    /// Transmissions of one request before it fails (at least 1).
    pub transmissions: u32,
    /// The peer of CreatePermission and ChannelBind (needed by [`Program::Setup`] and
    /// [`Program::Maintain`]).
    pub peer: Option<SocketAddr>,
    /// LIFETIME to ask for in Allocate and in the Refresh of [`Program::Maintain`]
    /// (None: the server's default; the maintenance Refresh then asks for 600 s).
    pub lifetime: Option<u32>,
    /// The address the client sockets bind to (None: [`default_local_ip`]).
    pub local_ip: Option<IpAddr>,
}

/// The address client sockets bind to by default: for a server on an IPv4 loopback
/// address, another loopback address (127.0.0.2, or 127.0.0.3 for a server on
/// 127.0.0.2), so that thousands of client sockets never take ports of the server's
/// relay range on its own address; for `::1`, `::1`; else the unspecified address.
pub fn default_local_ip(server: SocketAddr) -> IpAddr {
    match server.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => {
            if v4 == Ipv4Addr::new(127, 0, 0, 2) {
                Ipv4Addr::new(127, 0, 0, 3).into()
            } else {
                Ipv4Addr::new(127, 0, 0, 2).into()
            }
        }
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Why a program failed: the blocking client's errors (never [`ClientError::Tls`]).
pub type EngineError = ClientError;

/// Counters over everything an engine did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStats {
    /// Allocations that succeeded.
    pub allocated: u64,
    /// Allocate steps that failed (after their retries).
    pub allocate_failed: u64,
    /// Successful deletions (Refresh lifetime 0).
    pub deleted: u64,
    /// Deletions that failed.
    pub delete_failed: u64,
    /// Successful CreatePermission requests.
    pub permissions: u64,
    /// Successful ChannelBind requests.
    pub channel_binds: u64,
    /// Successful Refresh requests with a non-zero lifetime.
    pub refreshed: u64,
    /// Permission, ChannelBind and non-zero Refresh steps that failed.
    pub other_failed: u64,
    /// Requests sent, retransmissions included.
    pub requests_sent: u64,
    /// Retransmissions (a request sent again after its timeout).
    pub retransmissions: u64,
    /// 401 challenges answered.
    pub challenges: u64,
    /// 438 (stale nonce) answers retried with the new nonce.
    pub stale_nonces: u64,
    /// 437 answers to Allocate retried from a fresh socket.
    pub mismatch_retries: u64,
    /// Requests that got no answer after all transmissions.
    pub timeouts: u64,
    /// Sockets opened.
    pub sockets_opened: u64,
    /// Datagrams that matched no request in flight (late answers to retransmissions).
    pub stray: u64,
    /// ChannelData messages received (data relayed from a peer).
    pub channel_data: u64,
    /// How long a socket rests between deleting an allocation and the next Allocate on
    /// it: 0 (reuse at once) until the server answers 437 on a reused socket, which
    /// means it keeps deleted allocations for a while (coturn does, for about a second);
    /// then 2 s, doubled (up to 16 s) whenever a socket that rested that long still gets
    /// a 437. Meanwhile the socket stays open, so the kernel cannot hand its port to a
    /// new socket either.
    pub socket_cooldown_ms: u64,
    /// The most sockets resting at once.
    pub sockets_resting_max: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// A finished program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The slot.
    pub slot: usize,
    /// The program.
    pub program: Program,
    /// Whether every step succeeded.
    pub ok: bool,
}

/// A minted credential with its prepared long-term key for one realm.
#[derive(Debug)]
pub struct Signer {
    username: String,
    realm: String,
    key: IntegrityKey,
}

/// Mints credentials and derives long-term keys, once per credential and realm.
#[derive(Debug)]
struct SignerCache {
    credentials: Credentials,
    current: Option<(Rc<Signer>, Instant)>,
}

impl SignerCache {
    fn get(&mut self, realm: &str, now: Instant) -> Result<Rc<Signer>, EngineError> {
        if let Some((s, at)) = &self.current {
            let fresh = matches!(self.credentials, Credentials::Static { .. })
                || now.duration_since(*at) < REMINT_AFTER;
            if s.realm == realm && fresh {
                return Ok(Rc::clone(s));
            }
        }
        let (username, password) = self.credentials.username_password();
        let key = long_term_key(&username, realm, &password)?;
        let s = Rc::new(Signer {
            username,
            realm: realm.to_owned(),
            key,
        });
        self.current = Some((Rc::clone(&s), now));
        Ok(s)
    }
}

/// One socket and the program running on it.
#[derive(Debug)]
struct Slot {
    socket: Option<UdpSocket>,
    program: Option<Program>,
    step: usize,
    signer: Option<Rc<Signer>>,
    nonce: String,
    tid: TransactionId,
    req: Vec<u8>,
    /// Transmissions of the current request.
    sent: u32,
    /// Bumped at every transmission: a timer entry with an older value is stale.
    txseq: u32,
    stale: u32,
    mismatches: u32,
    started: Instant,
    relayed: Option<SocketAddr>,
    lifetime: Option<u32>,
    channel_data: u64,
    /// Index in `Engine::inflight` while a program runs.
    pos: usize,
    /// The socket carried an allocation before the current one.
    reused: bool,
    /// How long the socket rested before this allocation.
    rested: Duration,
}

/// The engine: slots, readiness, timers, counters.
pub struct Engine {
    cfg: EngineConfig,
    local: SocketAddr,
    slots: Vec<Slot>,
    queue: VecDeque<(usize, Program)>,
    inflight: Vec<usize>,
    timers: VecDeque<(Instant, u32, u32)>,
    /// Sockets resting after a deletion, oldest first, with the time they were put here.
    resting: VecDeque<(Instant, UdpSocket)>,
    cooldown: Duration,
    ready: Vec<usize>,
    epoll: Option<turnpike_udp::Poller>,
    readable: Vec<bool>,
    signers: SignerCache,
    tids: Tids,
    rx: Vec<u8>,
    now: Instant,
    stats: EngineStats,
    hist: Histogram<u64>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("server", &self.cfg.server)
            .field("slots", &self.slots.len())
            .field("inflight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with `slots` slots (no socket is opened yet); `salt` tells engines apart
    /// in transaction IDs.
    pub fn new(cfg: EngineConfig, slots: usize, salt: u32) -> io::Result<Self> {
        let local = SocketAddr::new(
            cfg.local_ip.unwrap_or_else(|| default_local_ip(cfg.server)),
            0,
        );
        let epoll = match cfg.poller {
            Poller::Epoll => Some(turnpike_udp::Poller::with_capacity(1024)?),
            Poller::Poll | Poller::Spin => None,
        };
        let now = Instant::now();
        let slots = (0..slots)
            .map(|_| Slot {
                socket: None,
                program: None,
                step: 0,
                signer: None,
                nonce: String::new(),
                tid: TransactionId([0; 12]),
                req: Vec::new(),
                sent: 0,
                txseq: 0,
                stale: 0,
                mismatches: 0,
                started: now,
                relayed: None,
                lifetime: None,
                channel_data: 0,
                pos: 0,
                reused: false,
                rested: Duration::ZERO,
            })
            .collect();
        Ok(Self {
            signers: SignerCache {
                credentials: cfg.credentials.clone(),
                current: None,
            },
            cfg,
            local,
            slots,
            queue: VecDeque::new(),
            inflight: Vec::new(),
            timers: VecDeque::new(),
            resting: VecDeque::new(),
            cooldown: Duration::ZERO,
            ready: Vec::new(),
            epoll,
            readable: Vec::new(),
            tids: Tids::new(salt.rotate_left(16)),
            rx: vec![0; RX_MAX],
            now,
            stats: EngineStats::default(),
            hist: new_hist(),
        })
    }

    /// Queues `program` on `slot`; it starts when fewer than `concurrency` programs are
    /// in flight. The slot must not be running or queued already.
    pub fn start(&mut self, slot: usize, program: Program) {
        if slot < self.slots.len() {
            self.queue.push_back((slot, program));
        }
    }

    /// Drops the programs that have not started yet and returns them.
    pub fn cancel_queued(&mut self) -> Vec<(usize, Program)> {
        self.queue.drain(..).collect()
    }

    /// Programs in flight or queued.
    pub fn busy(&self) -> usize {
        self.inflight.len() + self.queue.len()
    }

    /// The counters so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Allocate latency (first Allocate sent to its success response, 401 round trip
    /// included) in nanoseconds.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// The relayed address of `slot`'s allocation, once allocated.
    pub fn relayed(&self, slot: usize) -> Option<SocketAddr> {
        self.slots.get(slot).and_then(|s| s.relayed)
    }

    /// The lifetime the server granted `slot`'s allocation (last Allocate or Refresh).
    pub fn lifetime(&self, slot: usize) -> Option<u32> {
        self.slots.get(slot).and_then(|s| s.lifetime)
    }

    /// ChannelData messages `slot` received.
    pub fn channel_data(&self, slot: usize) -> u64 {
        self.slots.get(slot).map_or(0, |s| s.channel_data)
    }

    /// Starts queued programs, waits up to `max_wait` for responses (less when a timer
    /// is due sooner; not at all with [`Poller::Spin`]), handles them and the expired
    /// timers, and appends the programs that ended to `finished`.
    ///
    /// # Errors
    ///
    /// Only a failure of the readiness call itself; socket errors fail programs.
    pub fn poll_once(
        &mut self,
        max_wait: Duration,
        finished: &mut Vec<Finished>,
    ) -> io::Result<()> {
        self.now = Instant::now();
        self.start_queued(finished);
        let wait = self.timers.front().map_or(max_wait, |t| {
            t.0.saturating_duration_since(self.now).min(max_wait)
        });
        match self.cfg.poller {
            Poller::Epoll => {
                let epoll = self
                    .epoll
                    .as_mut()
                    .ok_or_else(|| io::Error::other("no epoll"))?;
                epoll.wait(Some(wait))?;
                self.now = Instant::now();
                let mut ready = std::mem::take(&mut self.ready);
                ready.clear();
                ready.extend(
                    epoll
                        .tokens()
                        .map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
                );
                for &s in &ready {
                    self.on_readable(s, finished);
                }
                self.ready = ready;
            }
            Poller::Poll => {
                let sockets: Vec<&UdpSocket> = self
                    .inflight
                    .iter()
                    .filter_map(|&s| self.slots[s].socket.as_ref())
                    .collect();
                let ids: Vec<usize> = self
                    .inflight
                    .iter()
                    .copied()
                    .filter(|&s| self.slots[s].socket.is_some())
                    .collect();
                let mut readable = std::mem::take(&mut self.readable);
                let r = if sockets.is_empty() {
                    std::thread::sleep(wait);
                    Ok(0)
                } else {
                    sys::poll_readable(&sockets, &mut readable, Some(wait))
                };
                drop(sockets);
                self.now = Instant::now();
                if r.is_ok() {
                    for (s, ready) in ids.iter().zip(&readable) {
                        if *ready {
                            self.on_readable(*s, finished);
                        }
                    }
                }
                self.readable = readable;
                r?;
            }
            Poller::Spin => {
                let mut i = 0;
                while i < self.inflight.len() {
                    let s = self.inflight[i];
                    self.on_readable(s, finished);
                    // The slot may have left the list (swap_remove): look at index i again.
                    if self.inflight.get(i) == Some(&s) {
                        i += 1;
                    }
                }
                if self.inflight.is_empty() && self.queue.is_empty() {
                    std::thread::sleep(wait);
                }
                self.now = Instant::now();
            }
        }
        self.expire_timers(finished);
        Ok(())
    }

    fn start_queued(&mut self, finished: &mut Vec<Finished>) {
        while self.inflight.len() < self.cfg.concurrency.max(1) {
            let Some((s, program)) = self.queue.pop_front() else {
                break;
            };
            if self.slots[s].program.is_some() {
                continue;
            }
            let slot = &mut self.slots[s];
            slot.program = Some(program);
            slot.step = 0;
            slot.mismatches = 0;
            slot.started = self.now;
            let allocates = program.steps()[0] == Step::Allocate;
            if allocates {
                slot.signer = None;
                slot.nonce.clear();
                slot.relayed = None;
            }
            slot.pos = self.inflight.len();
            self.inflight.push(s);
            let socket = if allocates {
                self.socket_for_allocation(s)
            } else if self.slots[s].socket.is_none() {
                self.open_socket(s)
            } else {
                Ok(())
            };
            if let Err(e) = socket {
                self.fail(s, &EngineError::Io(e), finished);
                continue;
            }
            self.send_step(s, finished);
        }
    }

    /// Gives slot `s` a socket for a new allocation: its own at once while the cooldown
    /// is zero, else the socket that rested longest if it rested long enough (or too
    /// many are resting), else a new one.
    fn socket_for_allocation(&mut self, s: usize) -> io::Result<()> {
        let slot = &mut self.slots[s];
        if self.cooldown.is_zero() {
            if slot.socket.is_some() {
                slot.reused = true;
                slot.rested = Duration::ZERO;
                return Ok(());
            }
        } else if let Some(old) = slot.socket.take() {
            self.rest(old);
        }
        if let Some(&(at, _)) = self.resting.front() {
            let rested = self.now.saturating_duration_since(at);
            if rested >= self.cooldown || self.resting.len() > POOL_MAX {
                if let Some((_, socket)) = self.resting.pop_front() {
                    if let Some(epoll) = &self.epoll {
                        epoll.add(&socket, s as u64)?;
                    }
                    let slot = &mut self.slots[s];
                    slot.socket = Some(socket);
                    slot.reused = true;
                    slot.rested = rested;
                    return Ok(());
                }
            }
        }
        self.open_socket(s)
    }

    /// Puts a socket to rest (unwatched) until the server has forgotten its 5-tuple.
    fn rest(&mut self, socket: UdpSocket) {
        if let Some(epoll) = &self.epoll {
            let _ = epoll.delete(&socket);
        }
        self.resting.push_back((self.now, socket));
        self.stats.sockets_resting_max = self
            .stats
            .sockets_resting_max
            .max(self.resting.len() as u64);
    }

    fn open_socket(&mut self, s: usize) -> io::Result<()> {
        let socket = UdpSocket::bind(self.local)?;
        socket.connect(self.cfg.server)?;
        socket.set_nonblocking(true)?;
        if let Some(epoll) = &self.epoll {
            epoll.add(&socket, s as u64)?;
        }
        self.stats.sockets_opened += 1;
        let slot = &mut self.slots[s];
        slot.socket = Some(socket);
        slot.reused = false;
        slot.rested = Duration::ZERO;
        Ok(())
    }

    /// Encodes the slot's current step as a new transaction and sends it.
    fn send_step(&mut self, s: usize, finished: &mut Vec<Finished>) {
        let tid = self.tids.next_id();
        let cfg = &self.cfg;
        let slot = &mut self.slots[s];
        let Some(program) = slot.program else {
            return;
        };
        let step = program.steps()[slot.step];
        slot.tid = tid;
        slot.sent = 0;
        let encoded = encode(
            &mut slot.req,
            step,
            tid,
            slot.signer.as_deref(),
            &slot.nonce,
            cfg,
        );
        if let Err(e) = encoded {
            self.fail(s, &e, finished);
            return;
        }
        self.transmit(s);
    }

    /// Sends the slot's request (again) and arms its timer. A send error counts as a
    /// lost transmission: the timer retransmits.
    fn transmit(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if let Some(socket) = &slot.socket {
            let _ = socket.send(&slot.req);
        }
        slot.sent += 1;
        slot.txseq = slot.txseq.wrapping_add(1);
        self.stats.requests_sent += 1;
        let slot_id = u32::try_from(s).unwrap_or(u32::MAX);
        self.timers
            .push_back((self.now + self.cfg.rto, slot_id, slot.txseq));
    }

    fn expire_timers(&mut self, finished: &mut Vec<Finished>) {
        while let Some(&(at, s, seq)) = self.timers.front() {
            if at > self.now {
                break;
            }
            self.timers.pop_front();
            let s = s as usize;
            let Some(slot) = self.slots.get(s) else {
                continue;
            };
            if slot.program.is_none() || slot.txseq != seq {
                continue;
            }
            if slot.sent < self.cfg.transmissions.max(1) {
                self.stats.retransmissions += 1;
                self.transmit(s);
            } else {
                self.stats.timeouts += 1;
                let step = slot
                    .program
                    .map_or(Step::Allocate, |p| p.steps()[slot.step]);
                self.fail(s, &EngineError::Timeout(step.method()), finished);
            }
        }
    }

    /// Reads one datagram from a readable slot socket and handles it.
    fn on_readable(&mut self, s: usize, finished: &mut Vec<Finished>) {
        let mut rx = std::mem::take(&mut self.rx);
        let n = match self.slots.get(s).and_then(|slot| slot.socket.as_ref()) {
            None => None,
            Some(socket) => match socket.recv(&mut rx) {
                Ok(n) => Some(n),
                // Nothing (a stale or spurious event), or ICMP port unreachable from an
                // earlier send: the timer retransmits.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    None
                }
                Err(e) => {
                    self.note_error(&EngineError::Io(e));
                    None
                }
            },
        };
        if let Some(n) = n {
            self.on_datagram(s, &rx[..n.min(rx.len())], finished);
        }
        self.rx = rx;
    }

    fn on_datagram(&mut self, s: usize, data: &[u8], finished: &mut Vec<Finished>) {
        if matches!(data.first(), Some(0x40..=0x7F)) {
            self.stats.channel_data += 1;
            self.slots[s].channel_data += 1;
            return;
        }
        let Ok(msg) = Message::new_checked(data) else {
            self.stats.stray += 1;
            return;
        };
        let slot = &self.slots[s];
        let Some(program) = slot.program else {
            self.stats.stray += 1;
            return;
        };
        if msg.transaction_id() != slot.tid {
            self.stats.stray += 1;
            return;
        }
        let step = program.steps()[slot.step];
        let ty = msg.message_type();
        if ty.method != step.method() {
            self.stats.stray += 1;
            return;
        }
        match ty.class {
            Class::Success => self.on_success(s, step, &msg, finished),
            Class::Error => self.on_error(s, step, &msg, finished),
            _ => self.stats.stray += 1,
        }
    }

    fn on_success(
        &mut self,
        s: usize,
        step: Step,
        msg: &Message<&[u8]>,
        finished: &mut Vec<Finished>,
    ) {
        let verified = self.slots[s]
            .signer
            .as_ref()
            .is_none_or(|sg| msg.verify_integrity(&sg.key).is_ok());
        if !verified {
            let e = EngineError::Protocol("response MESSAGE-INTEGRITY does not verify".into());
            self.fail(s, &e, finished);
            return;
        }
        let slot = &mut self.slots[s];
        let lifetime = msg.get::<Lifetime>().ok().flatten().map(|l| l.0);
        match step {
            Step::Allocate => {
                let Some(relayed) = msg.get::<XorRelayedAddress>().ok().flatten() else {
                    let e = EngineError::Protocol(
                        "Allocate success without XOR-RELAYED-ADDRESS".into(),
                    );
                    self.fail(s, &e, finished);
                    return;
                };
                slot.relayed = Some(relayed.0);
                slot.lifetime = lifetime;
                self.stats.allocated += 1;
                let took = self.now.saturating_duration_since(slot.started);
                self.hist
                    .saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
            Step::Permission => self.stats.permissions += 1,
            Step::ChannelBind => self.stats.channel_binds += 1,
            Step::Refresh => {
                slot.lifetime = lifetime.or(slot.lifetime);
                self.stats.refreshed += 1;
            }
            Step::Delete => {
                slot.relayed = None;
                self.stats.deleted += 1;
            }
        }
        self.advance(s, finished);
    }

    fn on_error(
        &mut self,
        s: usize,
        step: Step,
        msg: &Message<&[u8]>,
        finished: &mut Vec<Finished>,
    ) {
        let (code, reason) = error_code(msg);
        let rejected = || EngineError::Rejected {
            method: step.method(),
            code,
            reason: reason.to_owned(),
        };
        let nonce = msg.get::<Nonce>().ok().flatten().map(|n| n.0);
        let realm = msg.get::<Realm>().ok().flatten().map(|r| r.0);
        match code {
            401 if self.slots[s].signer.is_none() => {
                let (Some(nonce), Some(realm)) = (nonce, realm) else {
                    let e = EngineError::Protocol("401 without NONCE and REALM".into());
                    self.fail(s, &e, finished);
                    return;
                };
                let signer = match self.signers.get(realm, self.now) {
                    Ok(signer) => signer,
                    Err(e) => {
                        self.fail(s, &e, finished);
                        return;
                    }
                };
                self.stats.challenges += 1;
                let slot = &mut self.slots[s];
                slot.signer = Some(signer);
                slot.nonce.clear();
                slot.nonce.push_str(nonce);
                slot.stale = 0;
                self.send_step(s, finished);
            }
            438 if self.slots[s].stale < STALE_RETRIES && nonce.is_some() => {
                self.stats.stale_nonces += 1;
                let now = self.now;
                let signer = match (realm, &self.slots[s].signer) {
                    (Some(r), Some(sg)) if r != sg.realm => Some(self.signers.get(r, now)),
                    (Some(r), None) => Some(self.signers.get(r, now)),
                    _ => None,
                };
                let slot = &mut self.slots[s];
                match signer {
                    Some(Ok(sg)) => slot.signer = Some(sg),
                    Some(Err(e)) => {
                        self.fail(s, &e, finished);
                        return;
                    }
                    None => {}
                }
                let slot = &mut self.slots[s];
                slot.stale += 1;
                slot.nonce.clear();
                slot.nonce.push_str(nonce.unwrap_or_default());
                self.send_step(s, finished);
            }
            437 if step == Step::Allocate && self.slots[s].mismatches < MISMATCH_RETRIES => {
                self.stats.mismatch_retries += 1;
                let slot = &mut self.slots[s];
                // The server still holds the 5-tuple of an allocation this socket
                // deleted: let sockets rest (longer) before they allocate again.
                if slot.reused && slot.rested >= self.cooldown {
                    self.cooldown = if self.cooldown.is_zero() {
                        FIRST_COOLDOWN
                    } else {
                        (self.cooldown * 2).min(MAX_COOLDOWN)
                    };
                    self.stats.socket_cooldown_ms =
                        u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
                }
                slot.mismatches += 1;
                slot.signer = None;
                slot.nonce.clear();
                // The new socket is bound while the old one still is: another port.
                let old = slot.socket.take();
                let opened = self.open_socket(s);
                if let Some(old) = old {
                    if self.cooldown.is_zero() {
                        drop(old);
                    } else {
                        self.rest(old);
                    }
                }
                if let Err(e) = opened {
                    self.fail(s, &EngineError::Io(e), finished);
                    return;
                }
                self.send_step(s, finished);
            }
            _ => {
                let e = rejected();
                self.fail(s, &e, finished);
            }
        }
    }

    /// Moves to the next step, or ends the program successfully.
    fn advance(&mut self, s: usize, finished: &mut Vec<Finished>) {
        let slot = &mut self.slots[s];
        let Some(program) = slot.program else {
            return;
        };
        slot.step += 1;
        slot.stale = 0;
        if slot.step < program.steps().len() {
            self.send_step(s, finished);
        } else {
            self.end(s, true, finished);
        }
    }

    fn note_error(&mut self, e: &EngineError) {
        if self.stats.first_error.is_none() {
            self.stats.first_error = Some(e.to_string());
        }
    }

    /// Ends the program with an error: counts it and drops the slot's socket, so that
    /// whatever the server still holds for that 5-tuple is not reused.
    fn fail(&mut self, s: usize, e: &EngineError, finished: &mut Vec<Finished>) {
        self.note_error(e);
        let slot = &mut self.slots[s];
        let step = slot.program.map_or(Step::Allocate, |p| {
            p.steps()[slot.step.min(p.steps().len() - 1)]
        });
        match step {
            Step::Allocate => self.stats.allocate_failed += 1,
            Step::Delete => self.stats.delete_failed += 1,
            Step::Permission | Step::ChannelBind | Step::Refresh => self.stats.other_failed += 1,
        }
        slot.socket = None;
        slot.relayed = None;
        self.end(s, false, finished);
    }

    fn end(&mut self, s: usize, ok: bool, finished: &mut Vec<Finished>) {
        let slot = &mut self.slots[s];
        let Some(program) = slot.program.take() else {
            return;
        };
        slot.sent = 0;
        let pos = slot.pos;
        if self.inflight.get(pos) == Some(&s) {
            self.inflight.swap_remove(pos);
            if let Some(&moved) = self.inflight.get(pos) {
                self.slots[moved].pos = pos;
            }
        }
        finished.push(Finished {
            slot: s,
            program,
            ok,
        });
    }
}

/// Encodes one request of `step` into `req`.
fn encode(
    req: &mut Vec<u8>,
    step: Step,
    tid: TransactionId,
    signer: Option<&Signer>,
    nonce: &str,
    cfg: &EngineConfig,
) -> Result<(), EngineError> {
    let peer = || {
        cfg.peer
            .ok_or_else(|| EngineError::Protocol(format!("{:?} needs a peer", step.method())))
    };
    let enc = |e: EncodeError| EngineError::Protocol(format!("encode: {e:?}"));
    req.resize(REQ_MAX, 0);
    let ty = MessageType::new(step.method(), Class::Request);
    let mut w = MessageWriter::new(req, ty, tid).map_err(enc)?;
    match step {
        Step::Allocate => {
            w.put(&RequestedTransport(TransportProtocol::UDP))
                .map_err(enc)?;
            if let Some(l) = cfg.lifetime {
                w.put(&Lifetime(l)).map_err(enc)?;
            }
        }
        Step::Permission => w.put(&XorPeerAddress(peer()?)).map_err(enc)?,
        Step::ChannelBind => {
            let channel = ChannelNumber::new(CHANNEL).unwrap_or(ChannelNumber::MIN);
            w.put(&channel).map_err(enc)?;
            w.put(&XorPeerAddress(peer()?)).map_err(enc)?;
        }
        Step::Refresh => w.put(&Lifetime(cfg.lifetime.unwrap_or(600))).map_err(enc)?,
        Step::Delete => w.put(&Lifetime(0)).map_err(enc)?,
    }
    if let Some(sg) = signer {
        sign(&mut w, &sg.username, &sg.realm, nonce, &sg.key).map_err(enc)?;
    }
    w.put_fingerprint().map_err(enc)?;
    let n = w.finish();
    req.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use turnpike_stun::attr::{ErrorCodeAttr, PasswordAlgorithmId, Username};
    use turnpike_stun::{ErrorCode, LongTermKey};

    /// A scripted TURN server: 401 first, one 438, drops the first signed Allocate
    /// after the 438 (the client must retransmit), 437 for an Allocate on a 5-tuple that
    /// already allocated once (as coturn does right after a delete), success otherwise.
    fn fake_server(socket: UdpSocket, requests: usize) {
        let key = |user: &str| {
            LongTermKey::derive(PasswordAlgorithmId::MD5, user, "r", "p")
                .unwrap()
                .integrity_key()
        };
        let mut allocated: HashMap<SocketAddr, u32> = HashMap::new();
        let mut stale_sent = false;
        let mut dropped = false;
        let mut buf = [0u8; 1500];
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for _ in 0..requests {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let msg = Message::new_checked(&buf[..n]).unwrap();
            let method = msg.message_type().method;
            let tid = msg.transaction_id();
            let mut out = [0u8; 512];
            let error = |out: &mut [u8], code: u16, nonce: &str| {
                let ty = MessageType::new(method, Class::Error);
                let mut w = MessageWriter::new(out, ty, tid).unwrap();
                w.put(&ErrorCodeAttr::new(ErrorCode::new(code).unwrap()))
                    .unwrap();
                w.put(&Realm("r")).unwrap();
                w.put(&Nonce(nonce)).unwrap();
                w.finish()
            };
            let len = if !msg.has_integrity() {
                error(&mut out, 401, if stale_sent { "n2" } else { "n1" })
            } else if !stale_sent {
                stale_sent = true;
                error(&mut out, 438, "n2")
            } else if method == Method::ALLOCATE && !dropped {
                dropped = true;
                continue;
            } else if method == Method::ALLOCATE && allocated.get(&from) == Some(&1) {
                allocated.insert(from, 2);
                error(&mut out, 437, "n2")
            } else {
                assert_eq!(msg.get::<Nonce>().unwrap().unwrap().0, "n2");
                let user = msg.get::<Username>().unwrap().unwrap().0;
                let k = key(user);
                msg.verify_integrity(&k).unwrap();
                let ty = MessageType::new(method, Class::Success);
                let mut w = MessageWriter::new(&mut out, ty, tid).unwrap();
                if method == Method::ALLOCATE {
                    allocated.insert(from, 1);
                    w.put(&XorRelayedAddress("127.0.0.1:50000".parse().unwrap()))
                        .unwrap();
                    w.put(&Lifetime(600)).unwrap();
                }
                w.put_integrity(&k).unwrap();
                w.finish()
            };
            socket.send_to(&out[..len], from).unwrap();
        }
    }

    #[test]
    fn answers_401_438_437_and_retransmits() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        // Cycle 1: Allocate (401), signed (438), signed again (dropped, then answered),
        // Refresh 0. Cycle 2 on the same socket: Allocate (401), signed (437), fresh
        // socket: Allocate (401), signed, Refresh 0.
        let fake = std::thread::spawn(move || fake_server(server, 10));
        let cfg = EngineConfig {
            server: addr,
            credentials: Credentials::Static {
                user: "u".into(),
                password: "p".into(),
            },
            concurrency: 1,
            poller: Poller::Epoll,
            rto: Duration::from_millis(50),
            transmissions: 3,
            peer: None,
            lifetime: None,
            local_ip: None,
        };
        let mut e = Engine::new(cfg, 1, 0).unwrap();
        let mut done = Vec::new();
        for _ in 0..2 {
            e.start(0, Program::Cycle);
            let deadline = Instant::now() + Duration::from_secs(5);
            while e.busy() > 0 && Instant::now() < deadline {
                e.poll_once(Duration::from_millis(20), &mut done).unwrap();
            }
        }
        fake.join().unwrap();
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|f| f.ok), "{done:?} {:?}", e.stats());
        let s = e.stats();
        assert_eq!((s.allocated, s.deleted), (2, 2), "{s:?}");
        assert_eq!(s.challenges, 3, "{s:?}");
        assert_eq!(s.stale_nonces, 1, "{s:?}");
        assert_eq!(s.retransmissions, 1, "{s:?}");
        assert_eq!(s.mismatch_retries, 1, "{s:?}");
        assert_eq!(s.sockets_opened, 2, "{s:?}");
        assert_eq!(s.requests_sent, 10, "{s:?}");
        // The 437 on a reused socket taught the engine to let sockets rest.
        assert_eq!(s.socket_cooldown_ms, 2000, "{s:?}");
        assert_eq!(e.latency().len(), 2);
    }
}
