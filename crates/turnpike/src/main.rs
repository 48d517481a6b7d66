//! `turnpike`: the STUN/TURN server binary.
//!
//! Reads `turnserver.toml` (or runs the embedded default), sets up logging, binds every
//! listener and serves until SIGINT or SIGTERM; SIGHUP reloads the file, SIGUSR1 logs a
//! status line per worker, SIGUSR2 starts or stops redirecting new Allocates (see
//! [`operate`]). Exit codes: 0 after a clean shutdown, 1 when a listener cannot be bound,
//! 2 for a bad configuration or command line.

mod config;
mod credentials;
mod explain;
mod operate;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::error;
use turnpike_server::Server;

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
    /// credentials to browsers, with the URLs of this configuration's listeners.
    Credentials(credentials::CredentialsArgs),
    /// Say why the server would accept or reject a username and password: exit 0 if
    /// accepted, 1 if rejected.
    ExplainAuth(explain::ExplainArgs),
}

fn load(cli: &Cli) -> Result<Config, config::ConfigError> {
    match &cli.config {
        Some(path) => config::load(path),
        None => config::parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME),
    }
}

/// Runs `f` on the configuration and its name, or exits 2 if it does not load.
fn with_config(cli: &Cli, f: impl FnOnce(&Config, &str) -> ExitCode) -> ExitCode {
    let name = cli.config.as_ref().map_or_else(
        || DEFAULT_CONFIG_NAME.to_owned(),
        |p| p.display().to_string(),
    );
    match load(cli) {
        Ok(config) => f(&config, &name),
        Err(e) => {
            eprintln!("turnpike: {e}");
            ExitCode::from(2)
        }
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
        Some(Command::Credentials(ref args)) => {
            return with_config(&cli, |c, name| credentials::run(args, c, name));
        }
        Some(Command::ExplainAuth(ref args)) => {
            return with_config(&cli, |c, name| explain::run(args, c, name));
        }
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
        // The TLS files' stamps before the server reads them (see `watch`).
        let tls = config.tls.clone();
        let stamps = tls.as_ref().map_or([None, None], watch::stamp);
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
        let operator = operate::Operator {
            path,
            generated_secret,
            log,
            control: server.control(),
            watch: watch::CertWatch::new(tls.as_ref(), stamps),
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
