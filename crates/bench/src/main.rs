//! `turnpike-bench`: load generator for TURN servers (see the crate README).

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use turnpike_bench::load::{MIN_PAYLOAD, Mode, RunParams, Session, Shape, Target};
use turnpike_bench::search::{SearchParams, plot, search};
use turnpike_bench::storm::{StormParams, run as storm_run};
use turnpike_bench::{Credentials, output};

/// Longest single run or search, in seconds.
const MAX_SECS: f64 = 3600.0;

#[derive(Parser, Debug)]
#[command(
    name = "turnpike-bench",
    version,
    about = "Load generator for TURN servers: offered load, lossless-rate search, allocation storms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fixed offered load through the relay; reports delivery, loss, latency, jitter, fairness.
    Load(LoadArgs),
    /// RFC 2544-style binary search for the highest rate with loss ≤ --max-loss.
    Search(SearchArgs),
    /// Authenticated allocation storm: Allocate (with 401) then Refresh lifetime 0.
    Storm(StormArgs),
    /// Floods a plain UDP reflector on loopback to measure the generator's own ceiling.
    Calibrate(CalibrateArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// The TURN server's UDP address.
    #[arg(long)]
    server: SocketAddr,
    /// REST shared secret (coturn `static-auth-secret`, turnpike `secrets`).
    #[arg(long, conflicts_with_all = ["password"], required_unless_present = "password")]
    secret: Option<String>,
    /// User name: the user part of the REST username with --secret, or the username.
    #[arg(long, default_value = "bench")]
    user: String,
    /// Static password (long-term credentials) for --user.
    #[arg(long)]
    password: Option<String>,
}

impl ServerArgs {
    fn target(&self) -> Target {
        Target::Turn {
            server: self.server,
            credentials: self.credentials(),
        }
    }

    fn credentials(&self) -> Credentials {
        match (&self.secret, &self.password) {
            (Some(secret), _) => Credentials::Rest {
                secret: secret.clone(),
                user: self.user.clone(),
            },
            (None, password) => Credentials::Static {
                user: self.user.clone(),
                password: password.clone().unwrap_or_default(),
            },
        }
    }
}

#[derive(Args, Debug, Clone)]
struct WorkloadArgs {
    /// Number of clients (one allocation and one flow each).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Packets per second per client.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Payload bytes per packet (at least 24).
    #[arg(long, default_value_t = 120)]
    size: usize,
    /// Framing to the server.
    #[arg(long, value_enum, default_value_t = Mode::Channel)]
    mode: Mode,
    /// Pacing: steady, or bursty (a frame of rate/fps packets every 1/fps s).
    #[arg(long, value_enum, default_value_t = Shape::Steady)]
    shape: Shape,
    /// Frames per second for --shape bursty.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Peer sockets (each with its own receiving thread); flow i goes to peer i % peers.
    #[arg(long, default_value_t = 1)]
    peers: usize,
    /// The peer sockets' IP address (default: the local address that routes to the server).
    #[arg(long)]
    peer_ip: Option<IpAddr>,
    /// Milliseconds to keep receiving after the last send.
    #[arg(long, default_value_t = 500)]
    drain_ms: u64,
    /// Stop a run after this many packets in total.
    #[arg(long, default_value_t = 100_000_000)]
    max_packets: u64,
    /// Datagrams per recvmmsg call on each peer socket (1 = plain recv).
    #[arg(long, default_value_t = 32)]
    recv_batch: usize,
}

impl WorkloadArgs {
    fn params(&self, secs: f64) -> RunParams {
        RunParams {
            rate: self.rate,
            size: self.size,
            duration: Duration::from_secs_f64(secs),
            shape: self.shape,
            fps: self.fps,
            drain: Duration::from_millis(self.drain_ms.min(10_000)),
            max_packets: self.max_packets,
            recv_batch: self.recv_batch.clamp(1, 1024),
        }
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=20_000).contains(&self.clients) {
            return Err("--clients must be 1..=20000".into());
        }
        if !(MIN_PAYLOAD..=8192).contains(&self.size) {
            return Err(format!("--size must be {MIN_PAYLOAD}..=8192"));
        }
        if !(self.rate > 0.0 && self.rate <= 10_000_000.0) {
            return Err("--rate must be > 0 and ≤ 10 000 000".into());
        }
        if !(1..=64).contains(&self.peers) {
            return Err("--peers must be 1..=64".into());
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
struct OutputArgs {
    /// Print JSON instead of the table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV (header and rows) instead of the table.
    #[arg(long)]
    csv: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct CeilingArgs {
    /// The generator's calibrated ceiling (delivered pkt/s from `calibrate`).
    #[arg(long)]
    ceiling: Option<f64>,
    /// Calibrate first (a 2 s flood of the loopback reflector with the same clients and size).
    #[arg(long, conflicts_with = "ceiling")]
    calibrate: bool,
    /// With --calibrate: pin the reflector thread to this CPU (where the server runs).
    #[arg(long, requires = "calibrate")]
    reflector_cpu: Option<usize>,
}

#[derive(Args, Debug)]
struct LoadArgs {
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
struct SearchArgs {
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
    /// Highest total offered load (pkt/s, all clients).
    #[arg(long, default_value_t = 200_000.0)]
    max_pps: f64,
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
struct StormArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Allocations to make in total.
    #[arg(long, default_value_t = 1000)]
    allocations: u64,
    /// Allocations in flight (worker threads).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    max_duration: f64,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Args, Debug)]
struct CalibrateArgs {
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
    #[command(flatten)]
    out: OutputArgs,
}

fn progress(quiet: bool, len: u64, template: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

const RUN_TEMPLATE: &str = "{prefix} [{elapsed_precise}] {wide_bar} {msg}";

fn secs(v: f64, name: &str) -> Result<f64, String> {
    if v > 0.0 && v <= MAX_SECS {
        Ok(v)
    } else {
        Err(format!("{name} must be > 0 and ≤ {MAX_SECS}"))
    }
}

fn setup(target: &Target, work: &WorkloadArgs, mode: Mode, quiet: bool) -> Result<Session, String> {
    let pb = progress(
        quiet,
        work.clients as u64,
        "{prefix} {wide_bar} {pos}/{len}",
    );
    pb.set_prefix("allocating");
    let s = Session::setup(target, work.clients, work.peers, mode, work.peer_ip, &|i| {
        pb.set_position(i as u64);
    })
    .map_err(|e| format!("setup: {e}"))?;
    pb.finish_and_clear();
    Ok(s)
}

/// Floods the loopback reflector and returns the delivered rate.
fn calibrate(
    clients: usize,
    size: usize,
    peers: usize,
    duration: f64,
    cpu: Option<usize>,
    quiet: bool,
) -> Result<turnpike_bench::LoadReport, String> {
    let work = WorkloadArgs {
        clients,
        rate: 10_000_000.0,
        size,
        mode: Mode::Channel,
        shape: Shape::Steady,
        fps: 30,
        peers,
        peer_ip: None,
        drain_ms: 300,
        max_packets: 100_000_000,
        recv_batch: 32,
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
        let r = calibrate(
            work.clients,
            work.size,
            work.peers,
            2.0,
            c.reflector_cpu,
            quiet,
        )?;
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

fn cmd_load(a: &LoadArgs) -> Result<(), String> {
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

fn cmd_search(a: &SearchArgs) -> Result<(), String> {
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
        plot(&r, path).map_err(|e| format!("plot: {e}"))?;
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

fn cmd_storm(a: &StormArgs) -> Result<(), String> {
    let max = secs(a.max_duration, "--max-duration")?;
    if !(1..=1024).contains(&a.concurrency) {
        return Err("--concurrency must be 1..=1024".into());
    }
    let p = StormParams {
        server: a.server.server,
        credentials: a.server.credentials(),
        allocations: a.allocations.min(100_000_000),
        concurrency: a.concurrency,
        max_duration: Duration::from_secs_f64(max),
    };
    let pb = progress(
        a.out.quiet,
        p.allocations,
        "storm [{elapsed_precise}] {wide_bar} {pos}/{len}",
    );
    let r = storm_run(&p, &|n| pb.set_position(n));
    pb.finish_and_clear();
    if a.out.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else if a.out.csv {
        println!(
            "target,requested,allocated,failed,deleted,concurrency,duration_s,allocations_per_s,p50_us,p99_us,max_us"
        );
        let l = &r.allocate_latency;
        println!(
            "{},{},{},{},{},{},{:.3},{:.1},{:.1},{:.1},{:.1}",
            r.target,
            r.requested,
            r.allocated,
            r.failed,
            r.deleted,
            r.concurrency,
            r.duration_s,
            r.allocations_per_s,
            l.p50_us,
            l.p99_us,
            l.max_us
        );
    } else {
        print!("{}", output::storm_table(&r));
    }
    if r.allocated == 0 {
        return Err(r
            .first_error
            .unwrap_or_else(|| "no allocation succeeded".into()));
    }
    Ok(())
}

fn cmd_calibrate(a: &CalibrateArgs) -> Result<(), String> {
    let duration = secs(a.duration, "--duration")?;
    let r = calibrate(
        a.clients,
        a.size,
        a.peers,
        duration,
        a.reflector_cpu,
        a.out.quiet,
    )?;
    let paced = match a.rate {
        None => None,
        Some(rate) => {
            let work = WorkloadArgs {
                clients: a.clients,
                rate,
                size: a.size,
                mode: Mode::Channel,
                shape: a.shape,
                fps: 30,
                peers: a.peers,
                peer_ip: None,
                drain_ms: 500,
                max_packets: 100_000_000,
                recv_batch: 32,
            };
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Load(a) => cmd_load(a),
        Command::Search(a) => cmd_search(a),
        Command::Storm(a) => cmd_storm(a),
        Command::Calibrate(a) => cmd_calibrate(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turnpike-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
