//! `turnpike`: the STUN/TURN server binary.
//!
//! Reads `turnserver.toml` (or runs the embedded default), sets up logging, binds every
//! listener and serves until SIGINT or SIGTERM; SIGHUP reloads the file, SIGUSR1 logs a
//! status line per worker, SIGUSR2 starts or stops redirecting new Allocates (see
//! [`operate`]). Under systemd (`Type=notify`) it says READY=1, RELOADING=1, STOPPING=1
//! and feeds the watchdog ([`notify`]). Exit codes: 0 after a clean shutdown, 1 when a
//! listener cannot be bound, 2 for a bad configuration or command line, or one this
//! machine cannot serve (an address that is not its own, TLS files that do not load or
//! match, a listener port another process holds: see [`host_check`]).

mod banner;
mod config;
mod credentials;
mod ctl;
mod doctor;
mod explain;
mod host_check;
mod migrate;
mod notify;
mod operate;
mod selftest;
mod sockets;
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

/// What `--help` shows after the options: examples, exit codes and signals.
const AFTER_HELP: &str = "\
Examples:
  turnpike                                  run on the embedded default configuration
  turnpike -c /etc/turnpike/turnserver.toml run on a file (relative paths in it are
                                            relative to its folder)
  turnpike -c FILE check-config             check a file: every problem, with file:line
  turnpike default-config > turnserver.toml the documented defaults, to edit
  turnpike -c FILE credentials --user alice mint a TURN REST credential and iceServers
  turnpike -c FILE ctl status               ask the running server (admin API)
  turnpike -c FILE ctl drain                stop taking new allocations, keep the calls

Exit codes:
  0  done (for `run`: a clean shutdown)
  1  could not start (a listener cannot be bound, ...) or the check/request failed
  2  bad configuration or command line (the reason on stderr, with file:line)

Signals (run):
  SIGHUP   reload the configuration file (a bad file is refused, the old one stays)
  SIGTERM  stop ([drain] on_sigterm = true: drain first; a second SIGTERM stops at once)
  SIGINT   stop at once
  SIGUSR1  log one status line per worker
  SIGUSR2  start or stop draining (new Allocates go to an [alternates] sibling)
";

/// A STUN/TURN relay server.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = AFTER_HELP)]
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
    /// Check the configuration and exit: 0 if valid, 2 with the reason if not. Besides
    /// the file's own rules, checks it against this machine: every address is one of its
    /// own, the TLS certificate and key load and match, no listener port is taken.
    CheckConfig {
        /// Check the file only, not against this machine (to validate a configuration
        /// meant for another host; the TLS files are still loaded).
        #[arg(long)]
        skip_host_checks: bool,
    },
    /// Check a deployment from inside: listeners, relay and advertised addresses (with
    /// the cloud metadata service if one answers), certificate, clock, open-files limit,
    /// firewall hints. Exit 0 if no check FAILs, 1 if one does, 2 if the configuration
    /// cannot be read.
    Doctor(doctor::DoctorArgs),
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
    /// Write the turnserver.toml equivalent to coturn's turnserver.conf and list on
    /// stderr what could not be carried over: exit 0 if written, 2 if unreadable.
    MigrateCoturn(migrate::MigrateArgs),
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

/// The subcommands that do not read the configuration file: `--config` with them is a
/// mistake worth saying, not something to ignore.
fn without_config(command: &Command) -> Option<&'static str> {
    match command {
        Command::DefaultConfig => Some("default-config"),
        Command::Selftest(_) => Some("selftest"),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let (Some(path), Some(name)) = (&cli.config, cli.command.as_ref().and_then(without_config)) {
        eprintln!(
            "turnpike: `{name}` does not read a configuration file: drop --config {}",
            path.display()
        );
        return ExitCode::from(2);
    }
    match cli.command {
        Some(Command::DefaultConfig) => {
            print!("{DEFAULT_CONFIG}");
            return ExitCode::SUCCESS;
        }
        Some(Command::CheckConfig { skip_host_checks }) => {
            return match load(&cli) {
                Ok(config) => {
                    for warning in banner::dangers(&config) {
                        eprintln!("turnpike: warning: {warning}");
                    }
                    let problems = if skip_host_checks {
                        host_check::tls_problem(&config).into_iter().collect()
                    } else {
                        host_check::check_all(&config)
                    };
                    if problems.is_empty() {
                        println!("configuration ok");
                        return ExitCode::SUCCESS;
                    }
                    report(&cli, &problems)
                }
                Err(e) => {
                    eprintln!("turnpike: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::Doctor(ref args)) => {
            return match load(&cli) {
                Ok(config) => doctor::run(args, &config),
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
        Some(Command::MigrateCoturn(ref args)) => return migrate::run(args),
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
    // Addresses that are not this machine's are refused before anything is bound; a busy
    // listener and unusable TLS files come from `Server::bind` (see `run`).
    let problems = host_check::absent_addresses(&config);
    if !problems.is_empty() {
        return report(&cli, &problems);
    }
    let log = operate::init_logging(&config.log);
    for warning in banner::dangers(&config) {
        tracing::warn!("{warning}");
    }
    let mut generated_secret = None;
    operate::resolve(&mut config, &mut generated_secret);
    run(config, &cli, generated_secret, log)
}

/// The configuration file's name in messages and its text (to find a key's line).
fn config_source(cli: &Cli) -> (String, Option<String>) {
    match &cli.config {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).ok(),
        ),
        None => (
            DEFAULT_CONFIG_NAME.to_owned(),
            Some(DEFAULT_CONFIG.to_owned()),
        ),
    }
}

/// Prints each problem once, at its key's line, and exits 2.
fn report(cli: &Cli, problems: &[host_check::Problem]) -> ExitCode {
    let (name, text) = config_source(cli);
    for problem in problems {
        eprintln!(
            "turnpike: {}",
            host_check::located(&name, text.as_deref(), problem)
        );
    }
    ExitCode::from(2)
}

fn run(
    config: Config,
    cli: &Cli,
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
        // Kept to locate a start error that is the file's fault on this machine.
        let as_configured = config.clone();
        let server = match Server::bind(config) {
            Ok(s) => s,
            // Printed once: the log goes to stderr too.
            Err(e) => match host_check::start_problem(&as_configured, &e) {
                Some(problem) => return report(cli, &[problem]),
                None => {
                    eprintln!("turnpike: {e}");
                    return ExitCode::FAILURE;
                }
            },
        };
        drop(as_configured);
        let path = cli.config.clone();
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
                eprintln!("turnpike: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(operator.serve(signals));
        let mut stdout = std::io::stdout().lock();
        banner::print(
            &mut stdout,
            &server,
            &banner::Surfaces {
                listeners: &[
                    ("admin", surfaces.admin),
                    ("metrics", surfaces.metrics),
                    ("credentials", surfaces.credentials),
                ],
                admin_token_generated: surfaces.admin_token_generated.as_deref(),
            },
        );
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
