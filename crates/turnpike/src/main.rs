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

use crate::config::{Config, DEFAULT_CONFIG, DEFAULT_CONFIG_NAME};

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
        Some(Command::Run) | None => {}
    }
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("turnpike: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level);
    run(config)
}

fn init_logging(level: config::LogLevel) {
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
        .worker_threads(config.workers)
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
        let server = match Server::bind(config.server) {
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
