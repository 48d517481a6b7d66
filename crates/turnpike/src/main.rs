//! `turnpike`: the STUN/TURN server binary.
//!
//! Reads `turnserver.toml` (or runs the embedded default), sets up logging, binds every
//! listener and serves until SIGINT or SIGTERM; SIGHUP reloads the file, SIGUSR1 logs a
//! status line per worker, SIGUSR2 starts or stops redirecting new Allocates (see
//! [`operate`]). Exit codes: 0 after a clean shutdown, 1 when a listener cannot be bound,
//! 2 for a bad configuration or command line.

mod config;
mod operate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use tracing::error;
use turnpike_server::{Server, ServerControl};

use crate::config::{DEFAULT_CONFIG, DEFAULT_CONFIG_NAME};
use turnpike_server::Config;

/// A STUN/TURN relay server.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file; without it the embedded default (the shipped
    /// turnserver.toml) is used.
    #[arg(short, long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Run,
    /// Check the configuration and exit: 0 if valid, 2 with the reason if not.
    CheckConfig,
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Mint a TURN REST credential from the shared secret, for the app server that hands
    /// credentials to browsers.
    Credentials(CredentialsArgs),
}

/// Options of `turnpike credentials`.
#[derive(Debug, clap::Args)]
struct CredentialsArgs {
    /// The shared secret (the same as in `[turn] secrets`).
    #[arg(long)]
    secret: String,
    /// The user name to embed.
    #[arg(long)]
    user: String,
    /// How long the credential is valid: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    /// Print a ready `iceServers` entry as JSON instead of two lines.
    #[arg(long)]
    json: bool,
    /// Host name or IP of the TURN server, for the JSON `urls`.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Port of the TURN server, for the JSON `urls`.
    #[arg(long, default_value_t = 3478)]
    port: u16,
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86_400,
        _ => return Err(format!("unknown unit in {s:?}: use s, m, h or d")),
    };
    if secs == 0 {
        return Err("ttl must be positive".into());
    }
    Ok(secs)
}

fn credentials(args: &CredentialsArgs) -> ExitCode {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (username, password) =
        turnpike_proto::auth::rest::mint(args.secret.as_bytes(), &args.user, now + args.ttl);
    if args.json {
        let host = if args.host.contains(':') {
            format!("[{}]", args.host)
        } else {
            args.host.clone()
        };
        let entry = serde_json::json!({
            "urls": [
                format!("turn:{host}:{}?transport=udp", args.port),
                format!("turn:{host}:{}?transport=tcp", args.port),
            ],
            "username": username,
            "credential": password,
        });
        println!("{entry}");
    } else {
        println!("username: {username}");
        println!("password: {password}");
    }
    ExitCode::SUCCESS
}

fn load(cli: &Cli) -> Result<Config, config::ConfigError> {
    match &cli.config {
        Some(path) => config::load(path),
        None => config::parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::DefaultConfig) => {
            print!("{DEFAULT_CONFIG}");
            return ExitCode::SUCCESS;
        }
        Some(Command::CheckConfig) => {
            return match load(&cli) {
                Ok(_) => {
                    println!("configuration ok");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("turnpike: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::Credentials(ref args)) => return credentials(args),
        Some(Command::Run) | None => {}
    }
    let mut config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("turnpike: {e}");
            return ExitCode::from(2);
        }
    };
    let log = operate::init_logging(&config.log);
    let mut generated_secret = None;
    operate::resolve(&mut config, &mut generated_secret);
    run(config, cli.config, generated_secret, log)
}

fn run(
    config: Config,
    path: Option<PathBuf>,
    generated_secret: Option<String>,
    log: Option<operate::LogHandle>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime.worker_count())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::bind(config) {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                eprintln!("turnpike: {e}");
                return ExitCode::FAILURE;
            }
        };
        // From here on SIGHUP, SIGUSR1 and SIGUSR2 are the operator's (see `operate`).
        let signals = match operate::Signals::register() {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot handle signals");
                return ExitCode::FAILURE;
            }
        };
        let operator = Arc::new(operate::Operator {
            path,
            generated_secret: Mutex::new(generated_secret),
            log,
            control: server.control(),
        });
        let surfaces = match turnpike_admin::start(
            server.config(),
            server.control(),
            Arc::clone(&operator) as Arc<dyn turnpike_admin::Operator>,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                eprintln!("turnpike: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(operator.serve(signals));
        // One machine-readable line per listener on stdout, for operators and tests
        // (with port 0 in the config this is how the chosen port is learned).
        let mut stdout = std::io::stdout().lock();
        for (transport, addr) in server.local_addrs() {
            let _ = writeln!(stdout, "listening {transport} {addr}");
        }
        for ip in server.relay_ips() {
            let _ = writeln!(stdout, "relaying on {ip}");
        }
        for (name, addr) in [
            ("admin", surfaces.admin),
            ("metrics", surfaces.metrics),
            ("credentials", surfaces.credentials),
        ] {
            if let Some(addr) = addr {
                let _ = writeln!(stdout, "{name} http://{addr}");
            }
        }
        if let Some(token) = &surfaces.admin_token_generated {
            let _ = writeln!(stdout, "admin token {token}");
        }
        let _ = writeln!(stdout, "ready");
        let _ = stdout.flush();
        drop(stdout);
        let drain = server.config().drain;
        let control = server.control();
        server.run(shutdown_signal(drain, control)).await;
        ExitCode::SUCCESS
    })
}

/// Resolves when the server should stop now: SIGINT, or SIGTERM (unless `[drain]
/// on_sigterm`: then the first SIGTERM starts a drain, after which the server stops by
/// itself, and a second SIGTERM or a SIGINT stops it at once).
async fn shutdown_signal(drain: turnpike_server::DrainSection, control: ServerControl) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    let mut drained = false;
    loop {
        tokio::select! {
            _ = term.recv() => {
                if drain.on_sigterm && !drained {
                    drained = true;
                    tracing::info!("SIGTERM: draining (send it again to stop at once)");
                    let _ = control.drain(None).await;
                    continue;
                }
                return;
            }
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}
