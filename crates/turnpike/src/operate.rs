//! What the binary does while the server runs: the signals an operator sends.
//!
//! - **SIGHUP**: read the configuration file again (between RELOADING=1 and READY=1 to
//!   systemd, see [`crate::notify`]). A file that does not parse or validate
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
//!
//! Without a signal, the `[tls]` certificate and key files are looked at every
//! `[tls] watch_interval_secs` ([`crate::watch`]); when they changed and the new pair loads,
//! the file is reloaded exactly as on SIGHUP, and one line says so. A pair that does not
//! load yet (caught half-written) is reported once and tried again at the next look; the
//! certificate in force stays.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{debug, error, info, warn};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::reload::Handle;
use turnpike_server::{Config, Log, LogFormat, LogLevel, ReloadReport, ServerControl};

use crate::config;
use crate::notify;
use crate::watch::{self, CertWatch};

/// Changes the log filter while running.
pub(crate) type LogHandle = Handle<EnvFilter, tracing_subscriber::Registry>;

/// Everything a reload needs besides the file; shared by the signal handlers, the
/// certificate watch and the admin API ([`turnpike_admin::Operator`]).
pub(crate) struct Operator {
    /// The configuration file; `None` when running on the embedded default.
    pub(crate) path: Option<PathBuf>,
    /// The secret generated at start when the file configured none.
    pub(crate) generated_secret: Mutex<Option<String>>,
    /// The log filter, when `RUST_LOG` does not decide it.
    pub(crate) log: Option<LogHandle>,
    pub(crate) control: ServerControl,
    /// The watch over the `[tls]` files in force.
    pub(crate) watch: Mutex<CertWatch>,
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// SIGHUP.
    Signal,
    /// The admin API (`turnpike ctl reload`).
    Api,
    /// The `[tls]` files changed on disk; `report`: log a refusal at error level (else
    /// at debug: it was reported for the same files before).
    CertificateFiles {
        /// Whether a refusal is logged as an error.
        report: bool,
    },
}

impl Trigger {
    /// Logs why a reload was refused.
    fn refused(self, e: &dyn std::fmt::Display) {
        if self == (Self::CertificateFiles { report: false }) {
            debug!("reload refused again, the configuration in force stays: {e}");
        } else {
            error!("reload refused, the configuration in force stays: {e}");
        }
    }
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
            let look = self.watch().deadline();
            // Never reached when not watching (the branch is off); any instant will do.
            let at = look.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                Some(()) = signals.hup.recv() => {
                    // Logged inside; nobody to answer but systemd.
                    notify::reloading();
                    let applied = self.reload(Trigger::Signal).await.is_ok();
                    notify::reloaded(applied);
                }
                () = tokio::time::sleep_until(at), if look.is_some() => {
                    self.look_at_certificate().await;
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

    /// The `[tls]` files' watch is due: when they changed and load, reload as SIGHUP does.
    async fn look_at_certificate(&self) {
        let Some((files, stamps)) = self.watch().look() else {
            return;
        };
        // Try the pair before reloading the whole file, so a pair caught half-written
        // is told apart from a bad configuration and tried again quietly.
        if let Err(e) = turnpike_server::tls::acceptor(&files) {
            let (first, every) = {
                let mut watch = self.watch();
                (watch.failed(stamps), watch.interval().as_secs())
            };
            if first {
                warn!(
                    "TLS certificate files changed but do not load (yet), the certificate in \
                     force stays; trying again every {every} s: {e}"
                );
            } else {
                debug!(error = %e, "TLS certificate files still do not load");
            }
            return;
        }
        // A configuration that does not load is reported on the first try with these
        // files, and tried again quietly on the next looks.
        let first = self.watch().first_try(stamps);
        if self
            .reload(Trigger::CertificateFiles { report: first })
            .await
            .is_err()
        {
            self.watch().failed(stamps);
        }
    }

    /// The certificate watch, locked for a moment (never across an await).
    fn watch(&self) -> MutexGuard<'_, CertWatch> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads, validates and applies the configuration file (on SIGHUP, from the admin
    /// API, or when the certificate files changed); what was applied, or why not.
    async fn reload(&self, trigger: Trigger) -> Result<ReloadReport, String> {
        let Some(path) = &self.path else {
            let e = "running on the embedded default configuration; nothing to reload";
            warn!("reload: {e}");
            return Err(e.into());
        };
        let mut new = match config::load(path) {
            Ok(c) => c,
            Err(e) => {
                trigger.refused(&e);
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
        let tls = new.tls.clone();
        // Stamped before the server reads them: a change while it does is seen later.
        let stamps = tls.as_ref().map_or([None, None], watch::stamp);
        let report = match self.control.reload(new).await {
            Ok(report) => report,
            Err(e) => {
                trigger.refused(&e);
                return Err(e.to_string());
            }
        };
        *self.watch() = CertWatch::new(tls.as_ref(), stamps);
        if self.log.is_some() {
            if let Err(e) = self.apply_level(level) {
                warn!(error = %e, "reload: cannot change the log level");
            }
        }
        match (trigger, &tls) {
            (Trigger::CertificateFiles { .. }, Some(files)) => info!(
                cert = %files.cert.display(),
                key = %files.key.display(),
                file = %path.display(),
                applied = ?report.applied,
                "TLS certificate files changed: reloaded; new TLS connections get the new \
                 certificate, those made before keep theirs"
            ),
            _ => info!(
                file = %path.display(),
                applied = ?report.applied,
                "reloaded"
            ),
        }
        if !report.needs_restart.is_empty() {
            warn!(
                sections = ?report.needs_restart,
                "reload: these sections changed but take effect only after a restart"
            );
        }
        Ok(report)
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
                created = w.stats.allocations_created,
                ended = w.stats.allocations_closed,
                to_peer_packets = w.stats.to_peer,
                to_client_packets = w.stats.to_client,
                refused = w.stats.refused.iter().sum::<u64>(),
                auth_failures = w.stats.auth_failures.iter().sum::<u64>(),
                peers_denied = w.stats.peer_denied.iter().sum::<u64>(),
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
        Box::pin(Self::reload(self, Trigger::Api))
    }

    fn set_log_level(&self, level: LogLevel) -> Result<(), String> {
        self.apply_level(level)?;
        info!(level = level.as_str(), "log level changed");
        Ok(())
    }
}
