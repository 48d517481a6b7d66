//! Authenticated allocation storm on the event-driven [`engine`](crate::engine): each
//! thread keeps `concurrency / threads` allocations in flight, each on its own socket.
//! A socket allocates (unauthenticated request, 401, signed request), deletes the
//! allocation again with Refresh lifetime 0 (so the server never fills up), and then
//! starts the next allocation on the same socket. A socket whose allocation failed is
//! replaced by a new one (a new local port).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{Credentials, RETRIES, RETRY_TIMEOUT};
use crate::engine::{
    Engine, EngineConfig, EngineStats, Finished, Poller, Program, default_local_ip,
};
use crate::load::{Latency, new_hist};
use turnpike_udp::sys;

/// What to run.
#[derive(Debug, Clone)]
pub struct StormParams {
    /// The TURN server.
    pub server: std::net::SocketAddr,
    /// Credentials (REST credentials are minted every ten minutes and shared by all
    /// allocations of a thread; the long-term key is derived once per credential).
    pub credentials: Credentials,
    /// Total allocations to make.
    pub allocations: u64,
    /// Allocations in flight, all threads together.
    pub concurrency: usize,
    /// Threads (each with its own share of `concurrency`).
    pub threads: usize,
    /// How the threads wait for responses.
    pub poller: Poller,
    /// Stop starting allocations after this long.
    pub max_duration: Duration,
    /// The address the client sockets bind to (None: [`default_local_ip`]).
    pub local_ip: Option<IpAddr>,
}

/// The storm's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormReport {
    /// The server.
    pub target: String,
    /// The address the client sockets were bound to.
    pub local_ip: String,
    /// Allocations asked for.
    pub requested: u64,
    /// Successful allocations (each including its 401 round trip).
    pub allocated: u64,
    /// Allocations that failed (error response or timeout).
    pub failed: u64,
    /// Successful deletions (Refresh lifetime 0).
    pub deleted: u64,
    /// Wall-clock seconds.
    pub duration_s: f64,
    /// Successful allocations per second.
    pub allocations_per_s: f64,
    /// Time from the first Allocate to the success response (401 round trip included).
    pub allocate_latency: Latency,
    /// Allocate attempts answered 437 (the 5-tuple still had an allocation, usually a
    /// just-deleted one) and retried from a new port.
    pub mismatch_retries: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Allocations in flight (all threads together).
    pub concurrency: usize,
    /// Threads.
    pub threads: usize,
    /// Requests sent (Allocate twice per allocation, Refresh once; retransmissions
    /// included).
    pub requests_sent: u64,
    /// Requests sent again after a timeout.
    pub retransmissions: u64,
    /// 438 (stale nonce) answers retried with the new nonce.
    pub stale_nonces: u64,
    /// Sockets opened (one per slot, plus one per failure or 437).
    pub sockets_opened: u64,
    /// CPU seconds (user + system) the generator's storm threads used.
    pub generator_cpu_s: f64,
    /// Generator CPU per successful allocation, in microseconds.
    pub generator_cpu_us_per_allocation: f64,
    /// How the threads waited for responses.
    pub poller: Option<Poller>,
    /// How long a socket rested between a deletion and its next Allocate at the end
    /// (0 unless the server answered 437 on reused sockets; the longest of all threads).
    pub socket_cooldown_ms: u64,
    /// The most sockets resting at once (one thread).
    pub sockets_resting_max: u64,
}

/// Runs the storm; `tick` is called about every 100 ms with allocations done so far.
pub fn run(p: &StormParams, tick: &dyn Fn(u64)) -> StormReport {
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let deadline = start + p.max_duration;
    let concurrency = p.concurrency.max(1);
    let threads = p.threads.clamp(1, concurrency);
    // Each slot has a socket, and sockets rest for a while against a server that keeps
    // deleted allocations: the default soft limit (often 1024) is too low.
    let _ = sys::raise_nofile_limit(concurrency as u64 + 20_000);
    let results = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = concurrency / threads + usize::from(t < concurrency % threads);
                let (next, done, stop) = (&next, &done, &stop);
                scope.spawn(move || worker(p, share, t, next, done, stop, deadline))
            })
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            thread::sleep(Duration::from_millis(100));
            tick(done.load(Ordering::Relaxed));
            if Instant::now() > deadline + Duration::from_secs(5) {
                stop.store(true, Ordering::Relaxed);
            }
        }
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect::<Vec<_>>()
    });
    // The last worker's end, not the join: the loop above only looks every 100 ms.
    let end = results
        .iter()
        .map(|w| w.ended)
        .max()
        .unwrap_or_else(Instant::now);
    let secs = end.duration_since(start).as_secs_f64().max(1e-9);
    let mut hist = new_hist();
    let mut report = StormReport {
        target: p.server.to_string(),
        local_ip: p
            .local_ip
            .unwrap_or_else(|| default_local_ip(p.server))
            .to_string(),
        requested: p.allocations,
        concurrency,
        threads,
        duration_s: secs,
        poller: Some(p.poller),
        ..StormReport::default()
    };
    for w in results {
        let s = &w.stats;
        report.allocated += s.allocated;
        report.failed += s.allocate_failed;
        report.deleted += s.deleted;
        report.mismatch_retries += s.mismatch_retries;
        report.requests_sent += s.requests_sent;
        report.retransmissions += s.retransmissions;
        report.stale_nonces += s.stale_nonces;
        report.sockets_opened += s.sockets_opened;
        report.socket_cooldown_ms = report.socket_cooldown_ms.max(s.socket_cooldown_ms);
        report.sockets_resting_max = report.sockets_resting_max.max(s.sockets_resting_max);
        report.generator_cpu_s += w.cpu.as_secs_f64();
        if report.first_error.is_none() {
            report.first_error.clone_from(&s.first_error);
        }
        let _ = hist.add(&w.hist);
    }
    report.allocations_per_s = report.allocated as f64 / secs;
    report.generator_cpu_us_per_allocation =
        report.generator_cpu_s * 1e6 / report.allocated.max(1) as f64;
    report.allocate_latency = Latency::from_hist(&hist);
    report
}

struct WorkerResult {
    stats: EngineStats,
    hist: Histogram<u64>,
    cpu: Duration,
    ended: Instant,
}

fn worker(
    p: &StormParams,
    slots: usize,
    index: usize,
    next: &AtomicU64,
    done: &AtomicU64,
    stop: &AtomicBool,
    deadline: Instant,
) -> WorkerResult {
    let cpu0 = sys::cpu_time(true);
    let cfg = EngineConfig {
        server: p.server,
        credentials: p.credentials.clone(),
        concurrency: slots,
        poller: p.poller,
        rto: RETRY_TIMEOUT,
        transmissions: RETRIES,
        peer: None,
        lifetime: None,
        local_ip: p.local_ip,
    };
    let salt = u32::try_from(index).unwrap_or(u32::MAX);
    let mut engine = match Engine::new(cfg, slots, salt) {
        Ok(e) => e,
        Err(e) => {
            return WorkerResult {
                stats: EngineStats {
                    first_error: Some(format!("engine: {e}")),
                    ..EngineStats::default()
                },
                hist: new_hist(),
                cpu: Duration::ZERO,
                ended: Instant::now(),
            };
        }
    };
    let claim = || {
        !stop.load(Ordering::Relaxed)
            && Instant::now() < deadline
            && next.fetch_add(1, Ordering::Relaxed) < p.allocations
    };
    for s in 0..slots {
        if !claim() {
            break;
        }
        engine.start(s, Program::Cycle);
    }
    let mut finished: Vec<Finished> = Vec::new();
    while engine.busy() > 0 && !stop.load(Ordering::Relaxed) {
        if let Err(e) = engine.poll_once(Duration::from_millis(100), &mut finished) {
            let mut stats = engine.stats().clone();
            stats
                .first_error
                .get_or_insert_with(|| format!("wait: {e}"));
            return WorkerResult {
                stats,
                hist: engine.latency().clone(),
                cpu: sys::cpu_time(true).saturating_sub(cpu0),
                ended: Instant::now(),
            };
        }
        for f in finished.drain(..) {
            done.fetch_add(1, Ordering::Relaxed);
            if claim() {
                engine.start(f.slot, Program::Cycle);
            }
        }
    }
    WorkerResult {
        stats: engine.stats().clone(),
        hist: engine.latency().clone(),
        cpu: sys::cpu_time(true).saturating_sub(cpu0),
        ended: Instant::now(),
    }
}
