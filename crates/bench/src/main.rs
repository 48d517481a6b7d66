//! `turnpike-bench`: load generator for TURN servers (see the crate README).

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use turnpike_bench::client::Transport;
use turnpike_bench::engine::Poller;
use turnpike_bench::flood::{FIRST_SOURCE, FloodKind, FloodParams, run as flood_run};
use turnpike_bench::hold::{HoldParams, MAX_CLIENTS as HOLD_MAX_CLIENTS, run as hold_run};
use turnpike_bench::load::{
    DEFAULT_RECV_BATCH, DEFAULT_RECV_WAIT, DEFAULT_SEND_BATCH, DEFAULT_TICK, MIN_PAYLOAD, Mode,
    RunParams, SendPath, Session, SessionConfig, Shape, Target, To,
};
use turnpike_bench::search::{SearchParams, plot, search};
use turnpike_bench::storm::{StormParams, run as storm_run};
use turnpike_bench::{Credentials, output, tls};
use turnpike_udp::sys;

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
    /// Create N allocations (permission and channel each), hold them, delete them; for
    /// measuring the server's memory per allocation.
    Hold(HoldArgs),
    /// Unauthenticated Binding/Allocate requests from many spoofed 127.0.0.0/8 sources
    /// (loopback servers only), counting the answers by class.
    Flood(FloodArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// The TURN server's address (UDP; its TCP or TLS listener with --transport tcp|tls).
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
    /// Where the data goes: peers (client → relay → the bench's peer sockets) or clients
    /// (client 2k ↔ client 2k+1 through both relays, both directions; needs an even
    /// --clients, UDP or TCP).
    #[arg(long, value_enum, default_value_t = To::Peers)]
    to: To,
    /// Peer sockets (each with its own receiving thread); flow i goes to peer i % peers.
    /// With --to clients: receiving threads (client i is read by thread i % peers).
    #[arg(long, default_value_t = 1)]
    peers: usize,
    /// The peer sockets' IP address (default: the local address that routes to the server).
    #[arg(long)]
    peer_ip: Option<IpAddr>,
    /// Longest wait in milliseconds for stragglers after the last send (a run ends as
    /// soon as everything sent has arrived).
    #[arg(long, default_value_t = 500)]
    drain_ms: u64,
    /// Stop a run after this many packets in total.
    #[arg(long, default_value_t = 100_000_000)]
    max_packets: u64,
    /// Datagrams per recvmmsg call on each peer socket (1 = plain recv).
    #[arg(long, default_value_t = DEFAULT_RECV_BATCH)]
    recv_batch: usize,
    #[command(flatten)]
    send: IoArgs,
    #[command(flatten)]
    transport: TransportArgs,
}

/// The clients' transport to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum TransportKind {
    /// UDP.
    #[default]
    Udp,
    /// TCP (RFC 8656 §3.1), one connection per client.
    Tcp,
    /// TLS over TCP (turns:), one connection per client.
    Tls,
}

#[derive(Args, Debug, Clone, Default)]
struct TransportArgs {
    /// Client transport to the server (data still leaves the relay as UDP to the bench's
    /// peer sockets). --server is then the server's TCP (or TLS) address.
    #[arg(long, value_enum, default_value_t = TransportKind::Udp)]
    transport: TransportKind,
    /// With --transport tls: PEM file of the roots to verify the server against (no
    /// system roots are used).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// With --transport tls: do not verify the server's certificate (self-signed test
    /// servers).
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// With --transport tls: the name the certificate must carry, sent as SNI (default:
    /// the server's IP address).
    #[arg(long)]
    tls_name: Option<String>,
}

impl TransportArgs {
    fn build(&self, target: &Target) -> Result<Transport, String> {
        Ok(match (self.transport, target) {
            (TransportKind::Udp, _) | (_, Target::Reflector { .. }) => Transport::Udp,
            (TransportKind::Tcp, _) => Transport::Tcp,
            (TransportKind::Tls, Target::Turn { server, .. }) => Transport::Tls(
                tls::settings(
                    *server,
                    self.tls_name.as_deref(),
                    self.ca.as_deref(),
                    self.insecure,
                )
                .map_err(|e| e.to_string())?,
            ),
        })
    }
}

#[derive(Args, Debug, Clone, Copy)]
struct IoArgs {
    /// How datagrams are sent: plain (one send per datagram on each client's socket),
    /// mmsg (sendmmsg per client socket), shared (one socket sends for all clients with
    /// sendmmsg, each client's own 127.0.1.x source via IP_PKTINFO; loopback IPv4 only).
    /// Default: shared for a server on loopback IPv4, else mmsg.
    #[arg(long, value_enum)]
    send_path: Option<SendPath>,
    /// Datagrams per sendmmsg call (1..=512).
    #[arg(long, default_value_t = DEFAULT_SEND_BATCH)]
    send_batch: usize,
    /// Do not send a client's datagrams due in one pacing pass as one UDP GSO message
    /// (mmsg and shared paths; the server still receives them one by one).
    #[arg(long)]
    no_gso: bool,
    /// Microseconds the receiving threads let datagrams gather after a read that did not
    /// fill a batch (0: wake for every datagram). Latency comes from the kernel's receive
    /// time stamps either way.
    #[arg(long, default_value_t = DEFAULT_RECV_WAIT.as_micros() as u64)]
    recv_wait_us: u64,
    /// Pacing quantum in µs: at most one sending pass over the clients per tick; a
    /// client's datagrams due within a tick go out together (one GSO message). 0: a pass
    /// whenever a datagram is due.
    #[arg(long, default_value_t = DEFAULT_TICK.as_micros() as u64)]
    tick_us: u64,
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
        if !(1..=512).contains(&self.send.send_batch) {
            return Err("--send-batch must be 1..=512".into());
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
    /// Allocations in flight (all threads together), each on its own socket.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Threads (event loops); the in-flight allocations are shared out among them.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How each thread waits for responses.
    #[arg(long, value_enum, default_value_t = Poller::Epoll)]
    poller: Poller,
    /// Address for the client sockets (default: 127.0.0.2 for a server on 127.0.0.1,
    /// so that client ports never take the server's relay ports; else any).
    #[arg(long)]
    local_ip: Option<IpAddr>,
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
    .map_err(|e| format!("setup: {e}"))?;
    pb.finish_and_clear();
    Ok(s)
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
    if !(1..=20_000).contains(&a.concurrency) {
        return Err("--concurrency must be 1..=20000".into());
    }
    if !(1..=64).contains(&a.threads) {
        return Err("--threads must be 1..=64".into());
    }
    let p = StormParams {
        server: a.server.server,
        credentials: a.server.credentials(),
        allocations: a.allocations.min(100_000_000),
        concurrency: a.concurrency,
        threads: a.threads,
        poller: a.poller,
        max_duration: Duration::from_secs_f64(max),
        local_ip: a.local_ip,
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

#[derive(Args, Debug)]
struct HoldArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Allocations to create and hold (1..=20000); the open-files limit is raised to
    /// its hard limit.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Requests in flight at most (setup, refreshes and teardown alike).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The peer of every permission and channel (default: a UDP socket of the bench,
    /// which then checks every relay once with one datagram).
    #[arg(long)]
    peer: Option<SocketAddr>,
    /// Seconds to hold (default: until stdin reaches EOF, or SIGTERM/SIGINT; with
    /// stdin at /dev/null the hold ends as soon as it begins).
    #[arg(long)]
    hold_secs: Option<f64>,
    /// LIFETIME to ask for, in seconds (default: the server's).
    #[arg(long)]
    lifetime: Option<u32>,
    /// Refresh allocation, permission and channel this often, in seconds (default: half
    /// the granted lifetime, at most 120).
    #[arg(long)]
    refresh_secs: Option<f64>,
    /// Address for the client sockets (default: 127.0.0.2 for a server on 127.0.0.1,
    /// so that client ports never take the server's relay ports; else any).
    #[arg(long)]
    local_ip: Option<IpAddr>,
    /// Also print the report as JSON when the hold begins and at the end.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct FloodArgs {
    /// The server's UDP address: IPv4 loopback only.
    #[arg(long)]
    server: SocketAddr,
    /// Which requests: Binding, Allocate without credentials, or both alternating.
    #[arg(long, value_enum, default_value_t = FloodKind::Both)]
    kind: FloodKind,
    /// Distinct source addresses (127.1.0.1 upwards, skipping host bytes 0 and 255).
    #[arg(long, default_value_t = 100_000)]
    sources: u32,
    /// Requests per source.
    #[arg(long, default_value_t = 1)]
    per_source: u32,
    /// Requests per second, all sources together.
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// The first source address (host byte 1..=254).
    #[arg(long, default_value_t = FIRST_SOURCE)]
    first_source: std::net::Ipv4Addr,
    /// Local UDP port of every source (default: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Datagrams per sendmmsg call (1..=1024).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Milliseconds to wait for answers after the last send.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Writes to stdout; a closed stdout (a reader that went away) is not an error.
fn print_or_ignore(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Writes `v` as pretty JSON and a newline, as [`print_or_ignore`] does.
fn print_json(v: &impl serde::Serialize) {
    print_or_ignore(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

fn opt_secs(v: Option<f64>, name: &str) -> Result<Option<Duration>, String> {
    v.map(|v| secs(v, name).map(Duration::from_secs_f64))
        .transpose()
}

fn cmd_hold(a: &HoldArgs) -> Result<(), String> {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let hold_for = opt_secs(a.hold_secs, "--hold-secs")?;
    let refresh_every = opt_secs(a.refresh_secs, "--refresh-secs")?;
    if !(1..=HOLD_MAX_CLIENTS).contains(&a.clients) {
        return Err(format!("--clients must be 1..={HOLD_MAX_CLIENTS}"));
    }
    if !(1..=20_000).contains(&a.concurrency) {
        return Err("--concurrency must be 1..=20000".into());
    }
    sys::catch_termination().map_err(|e| format!("signal handlers: {e}"))?;
    let eof = Arc::new(AtomicBool::new(false));
    if hold_for.is_none() {
        let eof = Arc::clone(&eof);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            eof.store(true, Ordering::Relaxed);
        });
    }
    let stop = || sys::terminate_requested() || eof.load(Ordering::Relaxed);
    let p = HoldParams {
        server: a.server.server,
        credentials: a.server.credentials(),
        clients: a.clients,
        concurrency: a.concurrency,
        peer: a.peer,
        hold: hold_for,
        lifetime: a.lifetime,
        refresh_every,
        local_ip: a.local_ip,
    };
    let json = a.json;
    let r = hold_run(&p, &stop, &mut |r| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "holding {} allocations", r.held);
        if json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(r).unwrap_or_default()
            );
        }
        let _ = out.flush();
    })
    .map_err(|e| e.to_string())?;
    if a.json {
        print_json(&r);
    } else {
        print_or_ignore(&output::hold_table(&r));
    }
    if r.held == 0 {
        return Err(r
            .first_error
            .unwrap_or_else(|| "no allocation succeeded".into()));
    }
    Ok(())
}

fn cmd_flood(a: &FloodArgs) -> Result<(), String> {
    let p = FloodParams {
        server: a.server,
        kind: a.kind,
        sources: a.sources,
        per_source: a.per_source,
        rate: a.rate,
        first_source: a.first_source,
        port: a.port,
        batch: a.batch,
        drain: Duration::from_millis(a.drain_ms.min(60_000)),
    };
    let r = flood_run(&p).map_err(|e| e.to_string())?;
    if a.json {
        print_json(&r);
    } else {
        print_or_ignore(&output::flood_table(&r));
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
        Command::Hold(a) => cmd_hold(a),
        Command::Flood(a) => cmd_flood(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turnpike-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
