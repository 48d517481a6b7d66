//! The control-plane subcommands: `storm` (an authenticated allocation storm), `hold`
//! (many allocations held, for the server's memory per allocation) and `flood`
//! (unauthenticated requests from many spoofed loopback sources).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use turnpike_bench::engine::Poller;
use turnpike_bench::flood::{FIRST_SOURCE, FloodKind, FloodParams, run as flood_run};
use turnpike_bench::hold::{HoldParams, MAX_CLIENTS as HOLD_MAX_CLIENTS, run as hold_run};
use turnpike_bench::storm::{StormParams, run as storm_run};
use turnpike_bench::{Credentials, output};
use turnpike_udp::sys;

use super::args::{OutputArgs, ServerArgs};
use super::{opt_secs, print_json, print_or_ignore, progress, secs};

#[derive(Args, Debug)]
pub(crate) struct StormArgs {
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

pub(crate) fn cmd_storm(a: &StormArgs) -> Result<(), String> {
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

#[derive(Args, Debug)]
pub(crate) struct HoldArgs {
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
pub(crate) struct FloodArgs {
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
    /// With --kind refresh: REST shared secret that signs the Refreshes.
    #[arg(long, conflicts_with = "password")]
    secret: Option<String>,
    /// With --kind refresh: the user part of the REST username, or the username.
    #[arg(long, default_value = "bench")]
    user: String,
    /// With --kind refresh: static password for --user.
    #[arg(long)]
    password: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn cmd_hold(a: &HoldArgs) -> Result<(), String> {
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

pub(crate) fn cmd_flood(a: &FloodArgs) -> Result<(), String> {
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
        credentials: match (&a.secret, &a.password) {
            (Some(secret), _) => Some(Credentials::Rest {
                secret: secret.clone(),
                user: a.user.clone(),
            }),
            (None, Some(password)) => Some(Credentials::Static {
                user: a.user.clone(),
                password: password.clone(),
            }),
            (None, None) => None,
        },
    };
    let r = flood_run(&p).map_err(|e| e.to_string())?;
    if a.json {
        print_json(&r);
    } else {
        print_or_ignore(&output::flood_table(&r));
    }
    Ok(())
}
