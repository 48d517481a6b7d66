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
//!
//! The module by job: the settings, counters and the engine's public calls are here;
//! `program.rs` runs programs (sockets, transmissions, timers, responses); `request.rs`
//! mints credentials and encodes and signs requests.

mod program;
mod request;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use turnpike_stun::{Method, TransactionId};

use crate::client::{ClientError, Credentials, Tids};
use crate::load::new_hist;
use turnpike_udp::sys;

pub use request::Signer;
use request::SignerCache;

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
}
