//! `turnpike`: the STUN/TURN server binary.
//!
//! Reads `turnserver.toml` (or runs the embedded default), sets up logging, binds every
//! listener and serves until SIGINT or SIGTERM. Exit codes: 0 after a clean shutdown, 1
//! when a listener cannot be bound, 2 for a bad configuration or command line.

mod config;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::error;
use turnpike_server::Server;

use crate::config::{DEFAULT_CONFIG, DEFAULT_CONFIG_NAME};
use turnpike_server::{Config, LogLevel};

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
    init_logging(config.log.level);
    prepare_turn(&mut config);
    run(config)
}

/// Fills in what the configuration may leave open: relay IPs (detected from the
/// interfaces) and, when no secret and no user is configured, a random REST secret for
/// this run, printed so the operator can mint credentials with it.
fn prepare_turn(config: &mut Config) {
    if config.relay.ips.is_empty() {
        config.relay.ips = turnpike_server::relay::detect_relay_ips();
        if config.relay.ips.is_empty() {
            tracing::warn!(
                "no relay address found: TURN allocations will fail with 440 (set [relay] ips)"
            );
        }
    }
    let turn = &mut config.turn;
    if turn.secrets.is_empty() && turn.users.is_empty() {
        use base64::Engine;
        let bytes: [u8; 24] = rand::random();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        println!("turn secret {secret}");
        tracing::warn!(
            "no [turn] secrets or users configured: generated a secret for this run only; \
             mint credentials with `turnpike credentials --secret <it> --user NAME`"
        );
        turn.secrets.push(secret);
    }
}

fn init_logging(level: LogLevel) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_str()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(config: Config) -> ExitCode {
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
        // One machine-readable line per listener on stdout, for operators and tests
        // (with port 0 in the config this is how the chosen port is learned).
        let mut stdout = std::io::stdout().lock();
        for (transport, addr) in server.local_addrs() {
            let _ = writeln!(stdout, "listening {transport} {addr}");
        }
        for ip in server.relay_ips() {
            let _ = writeln!(stdout, "relaying on {ip}");
        }
        let _ = writeln!(stdout, "ready");
        let _ = stdout.flush();
        drop(stdout);
        server.run(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
