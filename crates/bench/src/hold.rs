//! Hold many allocations: create N (each with one CreatePermission and one ChannelBind to
//! a peer) on the event-driven [`engine`](crate::engine) with K in flight, keep them
//! (refreshing allocation, permission and channel before they expire) until told to
//! stop, then delete them all with Refresh lifetime 0.
//!
//! Meant for measuring a server's memory per allocation: its RSS before and while the
//! allocations are held, divided by N. When the bench owns the peer (no `peer` given),
//! it also checks every relay once: the peer socket sends one datagram to each relayed
//! address and the client must receive it as ChannelData.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{Credentials, RETRIES, RETRY_TIMEOUT};
use crate::engine::{Engine, EngineConfig, Finished, Poller, Program, default_local_ip};
use crate::load::Latency;
use turnpike_udp::sys;

/// Most allocations one hold may create.
pub const MAX_CLIENTS: usize = 20_000;
/// How long the relay check waits for the peer's datagrams to come back.
const CHECK_WAIT: Duration = Duration::from_secs(1);

/// What to hold.
#[derive(Debug, Clone)]
pub struct HoldParams {
    /// The TURN server.
    pub server: SocketAddr,
    /// Credentials.
    pub credentials: Credentials,
    /// Allocations to create.
    pub clients: usize,
    /// Requests programs in flight at most (setup, refresh and teardown alike).
    pub concurrency: usize,
    /// The peer of every permission and channel; None: a UDP socket of the bench.
    pub peer: Option<SocketAddr>,
    /// How long to hold; None: until `stop` says so.
    pub hold: Option<Duration>,
    /// LIFETIME to ask for (None: the server's default).
    pub lifetime: Option<u32>,
    /// Refresh each allocation, its permission and its channel this often; None: half
    /// the granted lifetime, at most 120 s (permissions last 300 s).
    pub refresh_every: Option<Duration>,
    /// The address the client sockets bind to (None: [`default_local_ip`]).
    pub local_ip: Option<IpAddr>,
}

/// Why a hold could not run.
#[derive(Debug)]
pub enum HoldError {
    /// The parameters are out of range.
    Params(String),
    /// A socket or system call failed outside any allocation.
    Io(io::Error),
}

impl fmt::Display for HoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Params(s) => f.write_str(s),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HoldError {}

impl From<io::Error> for HoldError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// The hold's result (also printed, with `deleted` still 0, when the hold begins).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HoldReport {
    /// The server.
    pub target: String,
    /// The address the client sockets were bound to.
    pub local_ip: String,
    /// Allocations asked for.
    pub requested: u64,
    /// Allocations made.
    pub allocated: u64,
    /// Setups that failed (Allocate, CreatePermission or ChannelBind).
    pub failed: u64,
    /// Allocations held (with their permission and channel) when the hold began.
    pub held: u64,
    /// Successful CreatePermission requests (setup and refreshes).
    pub permissions: u64,
    /// Successful ChannelBind requests (setup and refreshes).
    pub channel_binds: u64,
    /// The peer address of the permissions and channels.
    pub peer: String,
    /// Allocations whose relay delivered the bench peer's datagram as ChannelData
    /// (None when the peer is not the bench's).
    pub relay_checked: Option<u64>,
    /// Seconds to set everything up.
    pub setup_s: f64,
    /// Allocations made per second of setup.
    pub allocations_per_s: f64,
    /// Time from the first Allocate to the success response (401 round trip included).
    pub allocate_latency: Latency,
    /// Seconds held.
    pub hold_s: f64,
    /// Refreshes of allocation, permission and channel that succeeded.
    pub refreshes: u64,
    /// Held allocations lost because a refresh failed.
    pub lost: u64,
    /// Allocations deleted at the end (Refresh lifetime 0).
    pub deleted: u64,
    /// Deletions that failed.
    pub delete_failed: u64,
    /// Seconds to delete everything.
    pub teardown_s: f64,
    /// Requests sent, retransmissions included.
    pub requests_sent: u64,
    /// Requests sent again after a timeout.
    pub retransmissions: u64,
    /// Allocate attempts answered 437 and retried from a new port.
    pub mismatch_retries: u64,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// CPU seconds the generator used.
    pub generator_cpu_s: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// The local address that routes to `server` (for the bench's own peer socket).
fn local_ip_towards(server: SocketAddr) -> io::Result<IpAddr> {
    if server.ip().is_loopback() {
        return Ok(server.ip());
    }
    crate::load::local_ip_towards(server)
}

/// Runs a hold: sets up, calls `on_holding` once with the report so far, holds until
/// `p.hold` passes or `stop` returns true (checked about every 100 ms, also during
/// setup), then deletes everything and returns the final report.
pub fn run(
    p: &HoldParams,
    stop: &dyn Fn() -> bool,
    on_holding: &mut dyn FnMut(&HoldReport),
) -> Result<HoldReport, HoldError> {
    if !(1..=MAX_CLIENTS).contains(&p.clients) {
        return Err(HoldError::Params(format!(
            "--clients must be 1..={MAX_CLIENTS}"
        )));
    }
    let cpu0 = sys::cpu_time(false);
    // One socket per allocation, plus stdio, epoll, the peer socket and a few spare.
    let need = p.clients as u64 + 8;
    let limit = sys::raise_nofile_limit(need).unwrap_or(1024);
    if limit < need {
        return Err(HoldError::Params(format!(
            "{} allocations need {need} open files; the limit is {limit} (raise the hard \
             limit, `ulimit -Hn`, or run as root)",
            p.clients
        )));
    }
    let (own_peer, peer) = match p.peer {
        Some(peer) => (None, peer),
        None => {
            let socket = UdpSocket::bind(SocketAddr::new(local_ip_towards(p.server)?, 0))?;
            let addr = socket.local_addr()?;
            (Some(socket), addr)
        }
    };
    let cfg = EngineConfig {
        server: p.server,
        credentials: p.credentials.clone(),
        concurrency: p.concurrency.max(1),
        poller: Poller::Epoll,
        rto: RETRY_TIMEOUT,
        transmissions: RETRIES,
        peer: Some(peer),
        lifetime: p.lifetime,
        local_ip: p.local_ip,
    };
    let mut engine = Engine::new(cfg, p.clients, 0)?;
    let mut report = HoldReport {
        target: p.server.to_string(),
        local_ip: p
            .local_ip
            .unwrap_or_else(|| default_local_ip(p.server))
            .to_string(),
        requested: p.clients as u64,
        peer: peer.to_string(),
        concurrency: p.concurrency.max(1),
        ..HoldReport::default()
    };
    let period = |engine: &Engine, s: usize| {
        p.refresh_every.unwrap_or_else(|| {
            let lifetime = u64::from(engine.lifetime(s).unwrap_or(600));
            Duration::from_secs((lifetime / 2).clamp(1, 120))
        })
    };
    let mut held = vec![false; p.clients];
    let mut due: VecDeque<(Instant, usize)> = VecDeque::new();
    let mut finished: Vec<Finished> = Vec::new();
    let tick = Duration::from_millis(100);

    // Setup.
    let t0 = Instant::now();
    for s in 0..p.clients {
        engine.start(s, Program::Setup);
    }
    let mut stopped = false;
    while engine.busy() > 0 {
        if !stopped && stop() {
            stopped = true;
            engine.cancel_queued();
        }
        engine.poll_once(tick, &mut finished)?;
        for f in finished.drain(..) {
            if f.ok {
                held[f.slot] = true;
                report.held += 1;
                due.push_back((Instant::now() + period(&engine, f.slot), f.slot));
            } else {
                report.failed += 1;
            }
        }
    }
    report.setup_s = t0.elapsed().as_secs_f64();
    report.allocations_per_s = engine.stats().allocated as f64 / report.setup_s.max(1e-9);
    report.allocate_latency = Latency::from_hist(engine.latency());

    // Relay check: the bench's peer sends one datagram to every relayed address.
    if let Some(peer_socket) = &own_peer {
        if !stopped {
            let held_slots: Vec<usize> = (0..p.clients).filter(|&s| held[s]).collect();
            for &s in &held_slots {
                if let Some(relayed) = engine.relayed(s) {
                    let _ = peer_socket.send_to(b"turnpike-bench hold check", relayed);
                }
            }
            let deadline = Instant::now() + CHECK_WAIT;
            let checked = |e: &Engine| {
                held_slots
                    .iter()
                    .filter(|&&s| e.channel_data(s) > 0)
                    .count()
            };
            while Instant::now() < deadline && checked(&engine) < held_slots.len() && !stop() {
                engine.poll_once(Duration::from_millis(20), &mut finished)?;
            }
            report.relay_checked = Some(checked(&engine) as u64);
        }
    }
    fill(&mut report, &engine, cpu0);
    on_holding(&report);

    // Hold, refreshing what is due.
    let t1 = Instant::now();
    let until = p.hold.map(|h| t1 + h);
    loop {
        let now = Instant::now();
        if stopped || stop() || until.is_some_and(|u| now >= u) {
            break;
        }
        while let Some(&(at, s)) = due.front() {
            if at > now {
                break;
            }
            due.pop_front();
            engine.start(s, Program::Maintain);
        }
        let wait = until.map_or(tick, |u| u.saturating_duration_since(now).min(tick));
        engine.poll_once(wait, &mut finished)?;
        for f in finished.drain(..) {
            maintained(&mut report, &mut held, &mut due, f, period(&engine, f.slot));
        }
    }
    // Refreshes not started are dropped (their allocations are still held); the ones
    // in flight finish first.
    engine.cancel_queued();
    while engine.busy() > 0 {
        engine.poll_once(tick, &mut finished)?;
        for f in finished.drain(..) {
            maintained(&mut report, &mut held, &mut due, f, period(&engine, f.slot));
        }
    }
    report.hold_s = t1.elapsed().as_secs_f64();

    // Teardown.
    let t2 = Instant::now();
    for (s, _) in held.iter().enumerate().filter(|(_, h)| **h) {
        engine.start(s, Program::Delete);
    }
    while engine.busy() > 0 {
        engine.poll_once(tick, &mut finished)?;
        finished.clear();
    }
    report.teardown_s = t2.elapsed().as_secs_f64();
    fill(&mut report, &engine, cpu0);
    Ok(report)
}

fn maintained(
    report: &mut HoldReport,
    held: &mut [bool],
    due: &mut VecDeque<(Instant, usize)>,
    f: Finished,
    period: Duration,
) {
    if f.ok {
        report.refreshes += 1;
        due.push_back((Instant::now() + period, f.slot));
    } else {
        held[f.slot] = false;
        report.lost += 1;
    }
}

fn fill(report: &mut HoldReport, engine: &Engine, cpu0: Duration) {
    let s = engine.stats();
    report.allocated = s.allocated;
    report.permissions = s.permissions;
    report.channel_binds = s.channel_binds;
    report.deleted = s.deleted;
    report.delete_failed = s.delete_failed;
    report.requests_sent = s.requests_sent;
    report.retransmissions = s.retransmissions;
    report.mismatch_retries = s.mismatch_retries;
    report.first_error.clone_from(&s.first_error);
    report.generator_cpu_s = sys::cpu_time(false).saturating_sub(cpu0).as_secs_f64();
}
