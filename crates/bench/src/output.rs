//! Human-readable tables and CSV lines for the reports.

use std::fmt::Write;

use crate::flood::FloodReport;
use crate::hold::HoldReport;
use crate::load::LoadReport;
use crate::search::SearchReport;
use crate::storm::StormReport;

fn rate(pps: f64, bound: bool) -> String {
    if bound {
        format!("≥ {pps:.0} pkt/s (load generator bound)")
    } else {
        format!("{pps:.0} pkt/s")
    }
}

/// A multi-line table for one load run.
pub fn load_table(r: &LoadReport) -> String {
    let mut s = String::new();
    let l = &r.latency;
    let _ = writeln!(s, "target              {}", r.target);
    let _ = writeln!(
        s,
        "workload            {} clients x {:.1} pps x {} B, {} {}, {:.2} s, over {} to {}",
        r.clients, r.rate_per_client, r.size, r.mode, r.shape, r.duration_s, r.transport, r.to
    );
    let _ = writeln!(
        s,
        "offered             {:.0} pkt/s (target {:.0}), {} sent, {} send errors",
        r.offered_pps, r.target_pps, r.sent, r.send_errors
    );
    let _ = writeln!(
        s,
        "delivered           {}, {:.2} Mbit/s payload, {} packets",
        rate(r.delivered_pps, r.generator_bound),
        r.delivered_mbps,
        r.delivered
    );
    let _ = writeln!(
        s,
        "loss                {:.3} % ({} lost), {} reordered, {} duplicates",
        r.loss_pct, r.lost, r.reordered, r.duplicates
    );
    let _ = writeln!(
        s,
        "latency (one-way)   p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  (min {:.1}, mean {:.1}, max {:.1})",
        l.p50_us, l.p99_us, l.p999_us, l.min_us, l.mean_us, l.max_us
    );
    let _ = writeln!(
        s,
        "jitter (RFC 3550)   mean {:.1} µs, worst flow {:.1} µs",
        r.jitter_us_mean, r.jitter_us_max
    );
    let _ = writeln!(
        s,
        "fairness            per-flow delivered min {} max {}, Jain {:.4}",
        r.fairness.min_delivered, r.fairness.max_delivered, r.fairness.jain_index
    );
    let _ = writeln!(
        s,
        "generator           {} send path{}, {:.1} datagrams per send call, CPU {:.0} % ({:.2} µs/pkt)",
        r.send_path,
        if r.gso { " + GSO" } else { "" },
        r.send_batch_mean,
        r.generator_cpu_pct,
        r.generator_cpu_us_per_pkt
    );
    let _ = writeln!(
        s,
        "receiver            {:.1} datagrams per receive call, {} dropped by the bench's own sockets{}",
        r.recv_batch_mean,
        r.receiver_drops,
        r.reflector_drops
            .map_or(String::new(), |d| format!(", {d} by the reflector's"))
    );
    if r.transport != "udp" {
        let _ = writeln!(
            s,
            "stream writes       {:.1} % of the sending time (TCP backpressure when high)",
            r.write_wait_pct
        );
    }
    if let Some(c) = r.ceiling_pps {
        let _ = writeln!(s, "generator ceiling   {c:.0} pkt/s (calibrated)");
    }
    s
}

/// The CSV header matching [`load_csv_row`].
pub const LOAD_CSV_HEADER: &str = "target,mode,shape,clients,size,rate_per_client,target_pps,duration_s,sent,offered_pps,delivered,delivered_pps,delivered_mbps,lost,loss_pct,reordered,duplicates,send_errors,lat_min_us,lat_p50_us,lat_p90_us,lat_p99_us,lat_p999_us,lat_max_us,jitter_us_mean,jitter_us_max,flow_min,flow_max,jain,ceiling_pps,generator_bound,send_path,send_batch_mean,generator_cpu_pct,generator_cpu_us_per_pkt,receiver_drops,recv_batch_mean";

/// One CSV line for a load run.
pub fn load_csv_row(r: &LoadReport) -> String {
    let l = &r.latency;
    format!(
        "{},{},{},{},{},{:.3},{:.1},{:.3},{},{:.1},{},{:.1},{:.3},{},{:.4},{},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.2},{:.2},{},{},{:.5},{},{},{},{:.2},{:.1},{:.3},{},{:.2}",
        r.target,
        r.mode,
        r.shape,
        r.clients,
        r.size,
        r.rate_per_client,
        r.target_pps,
        r.duration_s,
        r.sent,
        r.offered_pps,
        r.delivered,
        r.delivered_pps,
        r.delivered_mbps,
        r.lost,
        r.loss_pct,
        r.reordered,
        r.duplicates,
        r.send_errors,
        l.min_us,
        l.p50_us,
        l.p90_us,
        l.p99_us,
        l.p999_us,
        l.max_us,
        r.jitter_us_mean,
        r.jitter_us_max,
        r.fairness.min_delivered,
        r.fairness.max_delivered,
        r.fairness.jain_index,
        r.ceiling_pps.map_or(String::new(), |c| format!("{c:.0}")),
        r.generator_bound,
        r.send_path,
        r.send_batch_mean,
        r.generator_cpu_pct,
        r.generator_cpu_us_per_pkt,
        r.receiver_drops,
        r.recv_batch_mean
    )
}

/// A table of a search's trials and its result.
pub fn search_table(r: &SearchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "trial  target pps  offered pps  delivered pps   loss %   p50 µs   p99 µs  pass"
    );
    for (i, t) in r.trials.iter().enumerate() {
        let x = &t.report;
        let _ = writeln!(
            s,
            "{:>5}  {:>10.0}  {:>11.0}  {:>13.0}  {:>7.3}  {:>7.1}  {:>7.1}  {}",
            i + 1,
            t.target_pps,
            x.offered_pps,
            x.delivered_pps,
            x.loss_pct,
            x.latency.p50_us,
            x.latency.p99_us,
            if t.pass { "yes" } else { "no" }
        );
    }
    let best = if r.max_lossless_pps == 0.0 {
        "none of the trials passed".to_owned()
    } else if r.generator_bound {
        rate(r.max_lossless_pps, true)
    } else if r.at_upper_bound {
        format!(
            "≥ {:.0} pkt/s (every trial passed: raise --max-pps or --max-trials)",
            r.max_lossless_pps
        )
    } else {
        rate(r.max_lossless_pps, false)
    };
    let _ = writeln!(s, "max rate with loss ≤ {} %: {best}", r.max_loss_pct);
    s
}

/// A table for a storm.
pub fn storm_table(r: &StormReport) -> String {
    let mut s = String::new();
    let l = &r.allocate_latency;
    let _ = writeln!(s, "target              {}", r.target);
    let _ = writeln!(
        s,
        "allocations         {} ok, {} failed, {} deleted of {} asked, {} in flight on {} threads, {:.2} s",
        r.allocated, r.failed, r.deleted, r.requested, r.concurrency, r.threads, r.duration_s
    );
    let _ = writeln!(
        s,
        "rate                {:.0} allocations/s (401 round trip and delete included)",
        r.allocations_per_s
    );
    let _ = writeln!(
        s,
        "allocate latency    p50 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
        l.p50_us, l.p99_us, l.max_us
    );
    let _ = writeln!(
        s,
        "requests            {} sent, {} retransmitted, {} stale nonces, {} sockets opened",
        r.requests_sent, r.retransmissions, r.stale_nonces, r.sockets_opened
    );
    let _ = writeln!(
        s,
        "generator CPU       {:.2} s, {:.1} µs per allocation",
        r.generator_cpu_s, r.generator_cpu_us_per_allocation
    );
    if r.mismatch_retries > 0 {
        let _ = writeln!(
            s,
            "437 retries         {} (allocation still held for a reused local port)",
            r.mismatch_retries
        );
    }
    if r.socket_cooldown_ms > 0 {
        let _ = writeln!(
            s,
            "socket rest         {:.1} s between a delete and the next Allocate on a socket \
             (the server keeps deleted allocations), {} sockets resting at most",
            r.socket_cooldown_ms as f64 / 1000.0,
            r.sockets_resting_max
        );
    }
    if let Some(e) = &r.first_error {
        let _ = writeln!(s, "first error         {e}");
    }
    s
}

/// A table for a hold.
pub fn hold_table(r: &HoldReport) -> String {
    let mut s = String::new();
    let l = &r.allocate_latency;
    let _ = writeln!(s, "target              {}", r.target);
    let _ = writeln!(
        s,
        "setup               {} allocated, {} failed of {} asked in {:.2} s ({:.0}/s, {} in flight)",
        r.allocated, r.failed, r.requested, r.setup_s, r.allocations_per_s, r.concurrency
    );
    let _ = writeln!(
        s,
        "allocate latency    p50 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
        l.p50_us, l.p99_us, l.max_us
    );
    let checked = r
        .relay_checked
        .map_or_else(String::new, |c| format!(", {c} relays checked"));
    let _ = writeln!(
        s,
        "held                {} with permission and channel to {}{checked}",
        r.held, r.peer
    );
    let _ = writeln!(
        s,
        "hold                {:.2} s, {} refreshes, {} lost",
        r.hold_s, r.refreshes, r.lost
    );
    let _ = writeln!(
        s,
        "teardown            {} deleted, {} failed in {:.2} s",
        r.deleted, r.delete_failed, r.teardown_s
    );
    let _ = writeln!(
        s,
        "requests            {} sent, {} retransmitted, {} 437 retries; generator CPU {:.2} s",
        r.requests_sent, r.retransmissions, r.mismatch_retries, r.generator_cpu_s
    );
    if let Some(e) = &r.first_error {
        let _ = writeln!(s, "first error         {e}");
    }
    s
}

/// A table for a flood.
pub fn flood_table(r: &FloodReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "target              {}", r.target);
    let _ = writeln!(
        s,
        "sources             {} ({} .. {}, port {}), {} requests each",
        r.sources, r.first_source, r.last_source, r.port, r.per_source
    );
    let _ = writeln!(
        s,
        "sent                {} in {:.2} s ({:.0}/s, {:.0}/s asked), {} send errors",
        r.sent, r.send_s, r.sent_per_s, r.target_rate, r.send_errors
    );
    if r.kind == Some(crate::flood::FloodKind::Refresh) {
        let _ = writeln!(s, "nonces              {} sources got one", r.nonces);
    }
    let _ = writeln!(
        s,
        "answered            {} ({:.2} %) in {:.2} s",
        r.answered, r.answered_pct, r.duration_s
    );
    let others: Vec<String> = r
        .other_errors
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    let _ = writeln!(
        s,
        "by class            {} Binding success, {} 401, other errors [{}], {} other",
        r.binding_success,
        r.unauthorized,
        others.join(", "),
        r.other_responses
    );
    let _ = writeln!(
        s,
        "checks              {} to a wrong address, {} wrong XOR-MAPPED-ADDRESS, {} unparsable, {} unmatched",
        r.wrong_destination, r.mapped_mismatch, r.unparsable, r.unmatched
    );
    let _ = writeln!(s, "generator CPU       {:.2} s", r.generator_cpu_s);
    if let Some(e) = &r.first_error {
        let _ = writeln!(s, "first error         {e}");
    }
    s
}
