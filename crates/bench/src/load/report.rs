//! The figures of a run: latency, fairness and the [`LoadReport`] a session makes from
//! what its sending and receiving threads counted.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::recv::RecvStats;
use super::send::SendStats;
use super::{RunParams, Session, To};

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

impl Session {
    /// The report of a run of `size`-byte payloads from what the threads counted.
    pub(super) fn report(
        &self,
        p: &RunParams,
        size: usize,
        r: &RecvStats,
        s: &SendStats,
    ) -> LoadReport {
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
}
