//! Authenticated allocation storm: each worker thread repeatedly opens a new socket,
//! allocates (unauthenticated request, 401, signed request) and deletes the allocation
//! again with Refresh lifetime 0, so the server never fills up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{Credentials, TurnClient};
use crate::load::Latency;

/// What to run.
#[derive(Debug, Clone)]
pub struct StormParams {
    /// The TURN server.
    pub server: std::net::SocketAddr,
    /// Credentials (REST credentials are minted once per allocation).
    pub credentials: Credentials,
    /// Total allocations to make.
    pub allocations: u64,
    /// Worker threads, each with one allocation in flight.
    pub concurrency: usize,
    /// Stop after this long even if not all allocations are done.
    pub max_duration: Duration,
}

/// The storm's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormReport {
    /// The server.
    pub target: String,
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
    /// just-deleted one on a reused local port) and retried from a new port.
    pub mismatch_retries: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Worker threads.
    pub concurrency: usize,
}

/// Runs the storm; `tick` is called about every 100 ms with allocations done so far.
pub fn run(p: &StormParams, tick: &dyn Fn(u64)) -> StormReport {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + p.max_duration;
    let workers = p.concurrency.max(1);
    let results = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (next, done, stop) = (Arc::clone(&next), Arc::clone(&done), Arc::clone(&stop));
                scope.spawn(move || worker(p, &next, &done, &stop, deadline))
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
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let mut hist = new_hist();
    let mut report = StormReport {
        target: p.server.to_string(),
        requested: p.allocations,
        concurrency: workers,
        duration_s: secs,
        ..StormReport::default()
    };
    for w in results {
        report.allocated += w.allocated;
        report.failed += w.failed;
        report.deleted += w.deleted;
        report.mismatch_retries += w.mismatches;
        if report.first_error.is_none() {
            report.first_error = w.first_error;
        }
        let _ = hist.add(&w.hist);
    }
    report.allocations_per_s = report.allocated as f64 / secs;
    if !hist.is_empty() {
        let us = |ns: u64| ns as f64 / 1000.0;
        report.allocate_latency = Latency {
            min_us: us(hist.min()),
            mean_us: hist.mean() / 1000.0,
            p50_us: us(hist.value_at_quantile(0.5)),
            p90_us: us(hist.value_at_quantile(0.9)),
            p99_us: us(hist.value_at_quantile(0.99)),
            p999_us: us(hist.value_at_quantile(0.999)),
            max_us: us(hist.max()),
        };
    }
    report
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!())
}

struct WorkerResult {
    allocated: u64,
    failed: u64,
    deleted: u64,
    mismatches: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
}

fn worker(
    p: &StormParams,
    next: &AtomicU64,
    done: &AtomicU64,
    stop: &AtomicBool,
    deadline: Instant,
) -> WorkerResult {
    let mut r = WorkerResult {
        allocated: 0,
        failed: 0,
        deleted: 0,
        mismatches: 0,
        first_error: None,
        hist: new_hist(),
    };
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if next.fetch_add(1, Ordering::Relaxed) >= p.allocations {
            break;
        }
        let t0 = Instant::now();
        let mut mismatches = 0;
        let result = TurnClient::connect(p.server, &p.credentials).and_then(|mut c| {
            let allocated = c.allocate(None);
            mismatches = c.mismatches;
            allocated?;
            let took = t0.elapsed();
            Ok((c, took))
        });
        r.mismatches += u64::from(mismatches);
        match result {
            Ok((mut c, took)) => {
                r.allocated += 1;
                r.hist.saturating_record(took.as_nanos() as u64);
                if c.refresh(0).is_ok() {
                    r.deleted += 1;
                }
            }
            Err(e) => {
                r.failed += 1;
                if r.first_error.is_none() {
                    r.first_error = Some(e.to_string());
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    r
}
