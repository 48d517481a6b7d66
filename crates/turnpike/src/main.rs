//! `turnpike`: the STUN/TURN server binary.
//!
//! Reads `turnserver.toml` (or runs the embedded default), sets up logging, binds every
//! listener and serves until SIGINT or SIGTERM; SIGHUP reloads the file, SIGUSR1 logs a
//! status line per worker, SIGUSR2 starts or stops redirecting new Allocates (see
//! [`operate`]). Under systemd (`Type=notify`) it says READY=1, RELOADING=1, STOPPING=1
//! and feeds the watchdog ([`notify`]). Exit codes: 0 after a clean shutdown, 1 when a
//! listener cannot be bound, 2 for a bad configuration or command line.

mod config;
mod credentials;
mod ctl;
mod explain;
mod notify;
mod operate;
mod selftest;
mod watch;

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
    /// credentials to browsers, with the URLs of this configuration's listeners.
    Credentials(credentials::CredentialsArgs),
    /// Say why the server would accept or reject a username and password: exit 0 if
    /// accepted, 1 if rejected.
    ExplainAuth(explain::ExplainArgs),
    /// Talk to a running server's admin API: status, sessions, kill, revoke, drain,
    /// reload, log level. Exit 0 if done, 1 if the API refused, 2 for usage or connection.
    Ctl(ctl::CtlArgs),
    /// Probe a running deployment as an attacker would (amplification, peer policy,
    /// slowloris) and print a verdict per probe: exit 0 if none FAILs, 1 if one does,
    /// 2 if nothing could be tested.
    Selftest(selftest::SelftestArgs),
    /// Print the man page (roff) made from this command line's help, for packagers.
    #[command(hide = true)]
    Man,
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
        Some(Command::Ctl(ref args)) => return ctl::run(args, || load(&cli)),
        Some(Command::Selftest(ref args)) => return selftest::run(args),
        Some(Command::Man) => return man(),
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
        let operator = Arc::new(operate::Operator {
            path,
            generated_secret: Mutex::new(generated_secret),
            log,
            control: server.control(),
            watch: Mutex::new(watch::CertWatch::new(tls.as_ref(), stamps)),
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
        notify::ready(server.local_addrs());
        tokio::spawn(notify::supervise(server.control()));
        let drain = server.config().drain;
        let control = server.control();
        server
            .run(async {
                shutdown_signal(drain, control).await;
                notify::stopping("stopping");
            })
            .await;
        // A drain that ended by itself (its STOPPING=1 was sent when it started).
        notify::stopping("stopped");
        ExitCode::SUCCESS
    })
}

/// `turnpike man`: writes the man page to stdout.
fn man() -> ExitCode {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    match clap_mangen::Man::new(Cli::command()).render(&mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turnpike: cannot write the man page: {e}");
            ExitCode::FAILURE
        }
    }
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
