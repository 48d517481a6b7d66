//! What the binary does while the server runs: the signals an operator sends.
//!
//! - **SIGHUP**: read the configuration file again. A file that does not parse or validate
//!   is refused with its file, line and reason, and the configuration in force stays. A
//!   valid one is applied without dropping an allocation or a connection
//!   ([`turnpike_server::ServerControl::reload`]): secrets, users, realm, peer policy,
//!   quotas, alternates (and `redirect`), SOFTWARE, the TLS certificate and key (read
//!   again even when the paths did not change, so a renewed certificate is picked up), and
//!   the log level (unless `RUST_LOG` is set). A change to `[listen]`, `[tcp]`, `[relay]`,
//!   `[rfc5780]` or `[runtime]` is reported as needing a restart and not applied.
//! - **SIGUSR1**: log one status line per worker (allocations, redirecting, counters).
//! - **SIGUSR2**: start or stop redirecting new Allocates to `[alternates]` (a drain by
//!   hand: existing allocations go on); a SIGHUP sets it back to the file's `redirect`.
//! - **SIGINT / SIGTERM**: stop (handled by the caller).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::reload::Handle;
use turnpike_server::{Config, Log, LogFormat, LogLevel, ReloadReport, ServerControl};

use crate::config;

/// Changes the log filter while running.
pub(crate) type LogHandle = Handle<EnvFilter, tracing_subscriber::Registry>;

/// Everything a reload needs besides the file; shared by the signal handlers and the
/// admin API ([`turnpike_admin::Operator`]).
pub(crate) struct Operator {
    /// The configuration file; `None` when running on the embedded default.
    pub(crate) path: Option<PathBuf>,
    /// The secret generated at start when the file configured none.
    pub(crate) generated_secret: Mutex<Option<String>>,
    /// The log filter, when `RUST_LOG` does not decide it.
    pub(crate) log: Option<LogHandle>,
    pub(crate) control: ServerControl,
}

/// The signals, registered before the server says it is ready (so none of them can
/// kill it from then on).
pub(crate) struct Signals {
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    /// Registers SIGHUP, SIGUSR1 and SIGUSR2.
    ///
    /// # Errors
    ///
    /// The system refused a handler.
    pub(crate) fn register() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }
}

impl Operator {
    /// Handles signals until the process ends.
    pub(crate) async fn serve(self: Arc<Self>, mut signals: Signals) {
        let mut redirecting = false;
        loop {
            tokio::select! {
                Some(()) = signals.hup.recv() => {
                    // Logged inside; nobody to answer.
                    let _ = self.reload_file().await;
                }
                Some(()) = signals.usr1.recv() => self.status().await,
                Some(()) = signals.usr2.recv() => {
                    redirecting = !redirecting;
                    self.control.set_redirect(redirecting);
                    info!(redirecting, "SIGUSR2: new Allocates {}", if redirecting {
                        "go to the alternates (existing allocations go on)"
                    } else {
                        "are served here again"
                    });
                }
                else => return,
            }
        }
    }

    /// SIGHUP and the admin API's reload: reads, validates and applies the
    /// configuration file, and logs what happened.
    pub(crate) async fn reload_file(&self) -> Result<ReloadReport, String> {
        let Some(path) = &self.path else {
            let e = "running on the embedded default configuration; nothing to reload";
            warn!("reload: {e}");
            return Err(e.into());
        };
        let mut new = match config::load(path) {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, the configuration in force stays: {e}");
                return Err(e.to_string());
            }
        };
        {
            let mut generated = self
                .generated_secret
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            resolve(&mut new, &mut generated);
        }
        let level = new.log.level;
        match self.control.reload(new).await {
            Ok(report) => {
                if let Err(e) = self.apply_level(level) {
                    warn!(error = %e, "reload: cannot change the log level");
                }
                info!(
                    file = %path.display(),
                    applied = ?report.applied,
                    "reloaded"
                );
                if !report.needs_restart.is_empty() {
                    warn!(
                        sections = ?report.needs_restart,
                        "reload: these sections changed but take effect only after a restart"
                    );
                }
                Ok(report)
            }
            Err(e) => {
                error!("reload refused, the configuration in force stays: {e}");
                Err(e.to_string())
            }
        }
    }

    /// Sets the log filter to `level` (refused when `RUST_LOG` decides it).
    fn apply_level(&self, level: LogLevel) -> Result<(), String> {
        let Some(log) = &self.log else {
            return Err("RUST_LOG decides the log level".into());
        };
        log.modify(|f| *f = EnvFilter::new(level.as_str()))
            .map_err(|e| e.to_string())
    }

    /// SIGUSR1: one line per worker.
    async fn status(&self) {
        for w in self.control.status().await {
            info!(
                worker = w.worker,
                allocations = w.allocations,
                redirecting = w.redirecting,
                stats = ?w.stats,
                "status"
            );
        }
    }
}

/// Fills in what a configuration may leave open, the same way at start and on every
/// reload: relay IPs (detected from the interfaces) and, when no secret and no user is
/// configured, a random REST secret for this process (generated once and printed, then
/// kept across reloads).
pub(crate) fn resolve(config: &mut Config, generated: &mut Option<String>) {
    if config.relay.ips.is_empty() {
        config.relay.ips = turnpike_server::relay::detect_relay_ips();
        if config.relay.ips.is_empty() {
            warn!("no relay address found: TURN allocations will fail with 440 (set [relay] ips)");
        }
    }
    let turn = &mut config.turn;
    if turn.secrets.is_empty() && turn.users.is_empty() {
        let secret = generated.get_or_insert_with(|| {
            use base64::Engine;
            let bytes: [u8; 24] = rand::random();
            let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            println!("turn secret {secret}");
            warn!(
                "no [turn] secrets or users configured: generated a secret for this run only; \
                 mint credentials with `turnpike credentials --secret <it> --user NAME`"
            );
            secret
        });
        turn.secrets.push(secret.clone());
    }
}

/// Sets up logging to stderr, human or JSON, at `[log] level` or as `RUST_LOG` says;
/// returns the handle that changes the level on reload (none when `RUST_LOG` decides).
pub(crate) fn init_logging(log: &Log) -> Option<LogHandle> {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(log.level.as_str()));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match log.format {
        LogFormat::Human => registry
            .with(lines.with_ansi(std::io::stderr().is_terminal()))
            .init(),
        LogFormat::Json => registry.with(lines.json()).init(),
    }
    (!fixed).then_some(handle)
}

impl turnpike_admin::Operator for Operator {
    fn reload(&self) -> turnpike_admin::BoxFuture<'_, Result<ReloadReport, String>> {
        Box::pin(self.reload_file())
    }

    fn set_log_level(&self, level: LogLevel) -> Result<(), String> {
        self.apply_level(level)?;
        info!(level = level.as_str(), "log level changed");
        Ok(())
    }
}
