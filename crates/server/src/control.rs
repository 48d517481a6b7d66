//! Controlling a running server: reload a configuration, redirect new allocations, read
//! the workers' status. A [`ServerControl`] is a cheap handle any task may hold (the
//! binary's signal handlers do); the server's own task applies each command between
//! packets, so nothing on the packet path waits for it.
//!
//! A reload changes what can change under live allocations and reports the rest:
//! `[turn]`, `[peers]`, `[quotas]`, `[alternates]` and `[stun]` go to every core
//! ([`turnpike_proto::TurnServer::reconfigure`]: live allocations, permissions and channels
//! stay), `[tls]` is read again and new connections get the new certificate (connections
//! made before keep theirs), and `[log] level` is the binary's to apply. `[listen]`, `[tcp]`,
//! `[relay]`, `[rfc5780]`, `[runtime]` and `[log] format` need a restart: a reload that changes them applies
//! the rest and names them in [`ReloadReport::needs_restart`].

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use turnpike_proto::server::Stats;

use crate::config::Config;
use crate::handoff::{ToWorker, Workers};
use crate::tls::{self, TlsError};

/// A command for the running server.
pub(crate) enum Control {
    /// Apply a new configuration.
    Reload(
        Box<Config>,
        oneshot::Sender<Result<ReloadReport, ReloadError>>,
    ),
    /// Start or stop redirecting new Allocates to the alternates.
    Redirect(bool),
    /// Report every worker's status.
    Status(oneshot::Sender<Vec<WorkerStatus>>),
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// The sections applied while running (those that differed).
    pub applied: Vec<&'static str>,
    /// The sections that differ but take effect only after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Why a reload was refused; the configuration in force stays.
#[derive(Debug)]
pub enum ReloadError {
    /// The new TLS certificate or key cannot be used.
    Tls(TlsError),
    /// The server has stopped.
    Stopped,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for ReloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Tls(e) => Some(e),
            Self::Stopped => None,
        }
    }
}

/// One worker's state, as [`ServerControl::status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStatus {
    /// The worker's index.
    pub worker: usize,
    /// Allocations it holds.
    pub allocations: usize,
    /// Whether it redirects new Allocates.
    pub redirecting: bool,
    /// Its core's counters.
    pub stats: Stats,
}

/// A handle on a running server.
#[derive(Debug, Clone)]
pub struct ServerControl {
    pub(crate) tx: mpsc::UnboundedSender<Control>,
}

impl ServerControl {
    /// Applies a new configuration (see the module docs for what changes live). The
    /// caller has validated it ([`Config::validate`]) and resolved what it leaves open
    /// (relay IPs, a generated secret) as it did at start.
    ///
    /// # Errors
    ///
    /// The new TLS files cannot be used, or the server has stopped; the configuration in
    /// force stays.
    pub async fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Control::Reload(Box::new(config), tx))
            .map_err(|_| ReloadError::Stopped)?;
        rx.await.map_err(|_| ReloadError::Stopped)?
    }

    /// Starts (true) or stops (false) redirecting every new Allocate to an alternate
    /// server ([`turnpike_proto::TurnServer::set_redirect`]); existing allocations go on.
    pub fn set_redirect(&self, redirect: bool) {
        let _ = self.tx.send(Control::Redirect(redirect));
    }

    /// Every worker's status; empty if the server has stopped.
    pub async fn status(&self) -> Vec<WorkerStatus> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Control::Status(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// The running server's side: the configuration in force and the workers' queues.
pub(crate) struct Controller {
    pub(crate) config: Config,
    pub(crate) workers: Workers,
}

impl Controller {
    /// Handles one command.
    pub(crate) async fn handle(&mut self, command: Control) {
        match command {
            Control::Reload(new, reply) => {
                let _ = reply.send(self.reload(*new));
            }
            Control::Redirect(on) => {
                for w in &self.workers {
                    let _ = w.send(ToWorker::Redirect(on));
                }
            }
            Control::Status(reply) => {
                let mut all = Vec::with_capacity(self.workers.len());
                for w in &self.workers {
                    let (tx, rx) = oneshot::channel();
                    if w.send(ToWorker::Status(tx)).is_ok() {
                        if let Ok(status) = rx.await {
                            all.push(status);
                        }
                    }
                }
                let _ = reply.send(all);
            }
        }
    }

    /// Applies what can change live, reports what cannot.
    fn reload(&mut self, new: Config) -> Result<ReloadReport, ReloadError> {
        let old = &self.config;
        let mut report = ReloadReport::default();
        let restart = [
            ("listen", old.listen != new.listen),
            ("tcp", old.tcp != new.tcp),
            ("relay", old.relay != new.relay),
            ("rfc5780", old.rfc5780 != new.rfc5780),
            ("runtime", old.runtime != new.runtime),
            ("log.format", old.log.format != new.log.format),
        ];
        report.needs_restart = restart
            .iter()
            .filter(|(_, d)| *d)
            .map(|(s, _)| *s)
            .collect();
        // TLS first: the only part that can still fail. Always read again, so a renewed
        // certificate at the same path is picked up.
        let acceptor = match &new.tls {
            Some(files) => Some(tls::acceptor(files).map_err(ReloadError::Tls)?),
            None => None,
        };
        if old.tls.is_some() || new.tls.is_some() {
            report.applied.push("tls");
        }
        let live = [
            ("turn", old.turn != new.turn),
            ("peers", old.peers != new.peers),
            ("quotas", old.quotas != new.quotas),
            ("alternates", old.alternates != new.alternates),
            ("stun", old.stun != new.stun),
            ("log", old.log.level != new.log.level),
        ];
        report
            .applied
            .extend(live.iter().filter(|(_, d)| *d).map(|(s, _)| *s));
        // What needs a restart keeps running as it is: the configuration in force takes
        // the live sections only.
        let next = Config {
            turn: new.turn,
            peers: new.peers,
            quotas: new.quotas,
            alternates: new.alternates,
            stun: new.stun,
            log: crate::config::Log {
                level: new.log.level,
                format: self.config.log.format,
            },
            tls: new.tls,
            ..self.config.clone()
        };
        let core = Arc::new(next.core());
        for w in &self.workers {
            let _ = w.send(ToWorker::Reconfigure(Arc::clone(&core)));
            let _ = w.send(ToWorker::Tls(acceptor.clone()));
        }
        self.config = next;
        Ok(report)
    }
}
