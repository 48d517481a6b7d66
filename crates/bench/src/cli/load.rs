//! The offered-load subcommands: `load` (one run), `search` (the highest loss-free rate)
//! and `calibrate` (the generator's own ceiling through the loopback reflector).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use turnpike_bench::load::{DEFAULT_RECV_BATCH, Mode, Session, SessionConfig, Shape, Target, To};
use turnpike_bench::output;
use turnpike_bench::search::{SearchParams, plot, search};

use super::args::{CeilingArgs, IoArgs, OutputArgs, ServerArgs, TransportArgs, WorkloadArgs};
use super::{RUN_TEMPLATE, progress, secs};

#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    work: WorkloadArgs,
    /// Seconds to send.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[command(flatten)]
    ceiling: CeilingArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Args, Debug)]
pub(crate) struct SearchArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    work: WorkloadArgs,
    /// Seconds per trial.
    #[arg(long, default_value_t = 5.0)]
    trial_secs: f64,
    /// Lowest total offered load (pkt/s, all clients).
    #[arg(long, default_value_t = 1000.0)]
    min_pps: f64,
    /// First top of the range (pkt/s, all clients); while every trial passes the top
    /// doubles, up to --max-growth times this.
    #[arg(long, default_value_t = 200_000.0)]
    max_pps: f64,
    /// How far the top may grow past --max-pps while every trial passes (1: fixed).
    #[arg(long, default_value_t = 16.0)]
    max_growth: f64,
    /// Pass threshold: loss percent.
    #[arg(long, default_value_t = 0.1)]
    max_loss: f64,
    /// Pass threshold: p99 one-way latency in µs (off unless given).
    #[arg(long)]
    max_p99_us: Option<f64>,
    /// Stop when the bracket is narrower than this fraction of its top.
    #[arg(long, default_value_t = 0.05)]
    resolution: f64,
    /// At most this many trials.
    #[arg(long, default_value_t = 10)]
    max_trials: usize,
    /// Start no new trial after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    max_time: f64,
    /// Write an SVG plot of delivered rate and latency over offered load.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    ceiling: CeilingArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Args, Debug)]
pub(crate) struct CalibrateArgs {
    /// Number of flows.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Payload bytes per packet.
    #[arg(long, default_value_t = 120)]
    size: usize,
    /// Peer sockets.
    #[arg(long, default_value_t = 1)]
    peers: usize,
    /// Seconds to flood.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Also run this paced load (pkt/s per client) through the reflector, for the
    /// generator's own latency at the same offered load as a `load` run.
    #[arg(long)]
    rate: Option<f64>,
    /// Pacing for --rate.
    #[arg(long, value_enum, default_value_t = Shape::Steady)]
    shape: Shape,
    /// Pin the reflector thread to this CPU: put it where the server under test runs,
    /// so that it does not take the generator's own core.
    #[arg(long)]
    reflector_cpu: Option<usize>,
    /// Datagrams per recvmmsg call on each peer socket (1 = plain recv).
    #[arg(long, default_value_t = DEFAULT_RECV_BATCH)]
    recv_batch: usize,
    #[command(flatten)]
    send: IoArgs,
    #[command(flatten)]
    out: OutputArgs,
}

impl CalibrateArgs {
    /// The workload at `rate` pkt/s per client through the reflector.
    fn work(&self, rate: f64) -> WorkloadArgs {
        WorkloadArgs {
            clients: self.clients,
            rate,
            size: self.size,
            mode: Mode::Channel,
            shape: self.shape,
            fps: 30,
            peers: self.peers,
            peer_ip: None,
            drain_ms: 500,
            max_packets: 100_000_000,
            recv_batch: self.recv_batch.clamp(1, 1024),
            send: self.send,
            transport: TransportArgs::default(),
            to: To::Peers,
        }
    }
}

fn setup(target: &Target, work: &WorkloadArgs, mode: Mode, quiet: bool) -> Result<Session, String> {
    let pb = progress(
        quiet,
        work.clients as u64,
        "{prefix} {wide_bar} {pos}/{len}",
    );
    pb.set_prefix("allocating");
    let cfg = SessionConfig {
        clients: work.clients,
        peers: work.peers,
        mode,
        peer_ip: work.peer_ip,
        send_path: work.send.send_path,
        send_batch: work.send.send_batch,
        gso: !work.send.no_gso,
        recv_wait: Duration::from_micros(work.send.recv_wait_us.min(50_000)),
        tick: Duration::from_micros(work.send.tick_us.min(20_000)),
        transport: work.transport.build(target)?,
        to: work.to,
    };
    let s = Session::setup_with(target, &cfg, &|i| {
        pb.set_position(i as u64);
    })
    .map_err(|e| setup_error(&e, work.clients))?;
    pb.finish_and_clear();
    Ok(s)
}

/// The setup error, with what to do about the usual causes.
fn setup_error(e: &turnpike_bench::ClientError, clients: usize) -> String {
    let hint = match e {
        turnpike_bench::ClientError::Rejected { code: 486, .. } => format!(
            "\nhint: every client allocates as the same user (--user), and the server allows a \
             user only so many allocations (turnpike: [quotas] allocations_per_user, default \
             100; coturn: user-quota). Raise it to at least {clients}, or use fewer --clients."
        ),
        turnpike_bench::ClientError::Rejected { code: 403, .. } => "\nhint: the server refuses \
             the peer address; on one machine the peers are on loopback, which a server \
             refuses unless told (turnpike: [peers] dangerous_allow_loopback_peers = true; \
             coturn: --allow-loopback-peers)."
            .to_owned(),
        _ => String::new(),
    };
    format!("setup: {e}{hint}")
}

/// Floods the loopback reflector and returns the delivered rate.
fn calibrate(
    base: &WorkloadArgs,
    duration: f64,
    cpu: Option<usize>,
    quiet: bool,
) -> Result<turnpike_bench::LoadReport, String> {
    let work = WorkloadArgs {
        rate: 10_000_000.0,
        mode: Mode::Channel,
        shape: Shape::Steady,
        peer_ip: None,
        drain_ms: 300,
        max_packets: 100_000_000,
        ..base.clone()
    };
    work.check()?;
    let mut session = setup(&Target::Reflector { cpu }, &work, Mode::Channel, quiet)?;
    let pb = progress(quiet, 1000, RUN_TEMPLATE);
    pb.set_prefix("calibrating");
    let mut report = session.run(&work.params(duration), &|f, d| {
        pb.set_position((f * 1000.0) as u64);
        pb.set_message(format!("{d} delivered"));
    });
    pb.finish_and_clear();
    // A flood is generator-bound by construction; the flag is meaningless here.
    report.generator_bound = false;
    report.ceiling_pps = Some(report.delivered_pps);
    Ok(report)
}

fn ceiling(c: &CeilingArgs, work: &WorkloadArgs, quiet: bool) -> Result<Option<f64>, String> {
    if c.calibrate {
        let r = calibrate(work, 2.0, c.reflector_cpu, quiet)?;
        eprintln!(
            "calibrated generator ceiling: {:.0} pkt/s delivered via the loopback reflector",
            r.delivered_pps
        );
        Ok(Some(r.delivered_pps))
    } else {
        Ok(c.ceiling)
    }
}

fn print_load(r: &turnpike_bench::LoadReport, out: &OutputArgs) {
    if out.json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
    } else if out.csv {
        println!("{}", output::LOAD_CSV_HEADER);
        println!("{}", output::load_csv_row(r));
    } else {
        print!("{}", output::load_table(r));
    }
}

pub(crate) fn cmd_load(a: &LoadArgs) -> Result<(), String> {
    a.work.check()?;
    let duration = secs(a.duration, "--duration")?;
    let ceiling = ceiling(&a.ceiling, &a.work, a.out.quiet)?;
    let mut session = setup(&a.server.target(), &a.work, a.work.mode, a.out.quiet)?;
    let pb = progress(a.out.quiet, 1000, RUN_TEMPLATE);
    pb.set_prefix("load");
    let mut r = session.run(&a.work.params(duration), &|f, d| {
        pb.set_position((f * 1000.0) as u64);
        pb.set_message(format!("{d} delivered"));
    });
    pb.finish_and_clear();
    session.close();
    r.apply_ceiling(ceiling);
    print_load(&r, &a.out);
    Ok(())
}

pub(crate) fn cmd_search(a: &SearchArgs) -> Result<(), String> {
    a.work.check()?;
    let trial_secs = secs(a.trial_secs, "--trial-secs")?;
    let max_time = secs(a.max_time, "--max-time")?;
    if !(a.min_pps > 0.0 && a.max_pps >= a.min_pps) {
        return Err("need 0 < --min-pps ≤ --max-pps".into());
    }
    let ceiling = ceiling(&a.ceiling, &a.work, a.out.quiet)?;
    let mut session = setup(&a.server.target(), &a.work, a.work.mode, a.out.quiet)?;
    let p = SearchParams {
        trial: a.work.params(trial_secs),
        min_pps: a.min_pps,
        max_pps: a.max_pps,
        max_growth: a.max_growth.clamp(1.0, 1024.0),
        max_loss_pct: a.max_loss,
        max_p99_us: a.max_p99_us,
        resolution: a.resolution.clamp(0.001, 0.5),
        max_trials: a.max_trials.clamp(1, 50),
        max_time: Duration::from_secs_f64(max_time),
    };
    let pb = progress(a.out.quiet, 1000, RUN_TEMPLATE);
    let r = search(
        &mut session,
        &p,
        ceiling,
        &|n, target| {
            pb.set_prefix(format!("trial {n} @ {target:.0} pps"));
            pb.set_position(0);
        },
        &|f, d| {
            pb.set_position((f * 1000.0) as u64);
            pb.set_message(format!("{d} delivered"));
        },
    );
    pb.finish_and_clear();
    session.close();
    if let Some(path) = &a.plot {
        let workload = format!(
            "{} clients × {} B, {}, {}",
            a.work.clients,
            a.work.size,
            format!("{:?}", a.work.mode).to_lowercase(),
            a.work.transport.name()
        );
        plot(&r, path, &workload).map_err(|e| format!("plot: {e}"))?;
    }
    if a.out.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else if a.out.csv {
        println!("trial,pass,{}", output::LOAD_CSV_HEADER);
        for (i, t) in r.trials.iter().enumerate() {
            println!("{},{},{}", i + 1, t.pass, output::load_csv_row(&t.report));
        }
    } else {
        print!("{}", output::search_table(&r));
    }
    Ok(())
}

pub(crate) fn cmd_calibrate(a: &CalibrateArgs) -> Result<(), String> {
    let duration = secs(a.duration, "--duration")?;
    let r = calibrate(&a.work(1.0), duration, a.reflector_cpu, a.out.quiet)?;
    let paced = match a.rate {
        None => None,
        Some(rate) => {
            let work = a.work(rate);
            work.check()?;
            let target = Target::Reflector {
                cpu: a.reflector_cpu,
            };
            let mut session = setup(&target, &work, Mode::Channel, a.out.quiet)?;
            let pb = progress(a.out.quiet, 1000, RUN_TEMPLATE);
            pb.set_prefix("paced");
            let mut p = session.run(&work.params(duration), &|f, d| {
                pb.set_position((f * 1000.0) as u64);
                pb.set_message(format!("{d} delivered"));
            });
            pb.finish_and_clear();
            p.apply_ceiling(Some(r.delivered_pps));
            Some(p)
        }
    };
    if a.out.json {
        let v = serde_json::json!({ "ceiling_pps": r.delivered_pps, "flood": r, "paced": paced });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if a.out.csv {
        println!("run,{}", output::LOAD_CSV_HEADER);
        println!("flood,{}", output::load_csv_row(&r));
        if let Some(p) = &paced {
            println!("paced,{}", output::load_csv_row(p));
        }
    } else {
        if let Some(p) = &paced {
            println!("paced load through the loopback reflector (no TURN):");
            print!("{}", output::load_table(p));
            println!();
            println!("flood:");
        }
        print!("{}", output::load_table(&r));
        println!(
            "ceiling: {:.0} pkt/s (pass --ceiling {:.0} to load/search)",
            r.delivered_pps, r.delivered_pps
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use turnpike_bench::ClientError;
    use turnpike_stun::Method;

    use super::setup_error;

    fn rejected(code: u16) -> ClientError {
        ClientError::Rejected {
            method: Method::ALLOCATE,
            code,
            reason: String::new(),
        }
    }

    #[test]
    fn a_quota_refusal_says_which_quota_and_what_to_do() {
        let text = setup_error(&rejected(486), 150);
        assert!(text.starts_with("setup: Allocate"), "{text}");
        assert!(text.contains("allocations_per_user"), "{text}");
        assert!(text.contains("at least 150"), "{text}");
        assert!(setup_error(&rejected(403), 1).contains("dangerous_allow_loopback_peers"));
        assert!(!setup_error(&rejected(508), 1).contains("hint"));
    }
}
