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

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use turnpike_proto::server::{Revocation, Session, SessionFilter, Stats};

use crate::config::Config;
use crate::handoff::{ToWorker, Workers};
use crate::inspect::{DrainStatus, MetricsSnapshot};
use crate::shared::Shared;
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
    /// Run a job on every worker.
    Each(Job),
    /// Gather the metrics.
    Metrics(oneshot::Sender<MetricsSnapshot>),
    /// Start draining (with this deadline, or `[drain] deadline_secs`), or report how
    /// far it is (`None` with `start` false).
    Drain {
        /// Start it (a drain under way keeps its deadline unless one is given).
        start: bool,
        /// The deadline from now.
        deadline: Option<Duration>,
        /// How far it is.
        reply: oneshot::Sender<DrainStatus>,
    },
}

/// Work for every worker, with its shared state (its core and host).
pub(crate) type Job = Arc<dyn Fn(&Shared) + Send + Sync>;

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
    /// The configuration in force, as the last reload left it.
    pub(crate) config: tokio::sync::watch::Receiver<Arc<Config>>,
}

impl ServerControl {
    /// The configuration in force (what needs a restart as at start, the rest as the
    /// last reload applied it; relay IPs and a generated secret resolved, listeners as
    /// bound).
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }

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

    /// Runs `f` on every worker (between its packets) and gathers what each returned;
    /// empty if the server has stopped.
    async fn on_each<T: Send + 'static>(
        &self,
        f: impl Fn(&Shared) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let job: Job = Arc::new(move |shared| {
            let _ = tx.send(f(shared));
        });
        if self.tx.send(Control::Each(job)).is_err() {
            return Vec::new();
        }
        // Every worker drops its handle on the job when done: the channel then closes.
        let mut all = Vec::new();
        while let Some(one) = rx.recv().await {
            all.push(one);
        }
        all
    }

    /// The sessions `filter` matches, on every worker.
    pub async fn sessions(&self, filter: SessionFilter) -> Vec<Session> {
        let mut all: Vec<Session> = self
            .on_each(move |s| s.core.borrow().sessions(Instant::now(), &filter))
            .await
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.age));
        all
    }

    /// Ends the sessions `filter` matches (each logs its accounting line); how many.
    pub async fn end_sessions(&self, filter: SessionFilter) -> usize {
        self.on_each(move |s| {
            s.with_core(|core, host| core.end_sessions(Instant::now(), &filter, host))
        })
        .await
        .into_iter()
        .sum()
    }

    /// Revokes a user or username on every worker and ends its live allocations; how
    /// many ended. Revocations last until they lapse or the process stops.
    pub async fn revoke(&self, revocation: Revocation) -> usize {
        self.on_each(move |s| {
            s.with_core(|core, host| core.revoke(Instant::now(), revocation.clone(), host))
        })
        .await
        .into_iter()
        .sum()
    }

    /// Lifts a revocation; whether there was one.
    pub async fn unrevoke(&self, name: String) -> bool {
        self.on_each(move |s| s.core.borrow_mut().unrevoke(&name))
            .await
            .into_iter()
            .any(|x| x)
    }

    /// The revocations in force.
    pub async fn revocations(&self) -> Vec<Revocation> {
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.on_each(move |s| s.core.borrow().revocations(unix_now))
            .await
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Every figure the metrics show, summed over the workers.
    pub async fn metrics(&self) -> Option<MetricsSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Control::Metrics(tx)).ok()?;
        rx.await.ok()
    }

    /// Starts draining: new Allocates get 300 to a sibling of `[alternates]` (508 where
    /// none is set), existing allocations go on, and the server stops when the last one
    /// ends or `deadline` (default `[drain] deadline_secs`) passes. Draining again only
    /// changes the deadline when one is given.
    pub async fn drain(&self, deadline: Option<Duration>) -> Option<DrainStatus> {
        self.drain_command(true, deadline).await
    }

    /// How far a drain is (`draining` false when none was asked for).
    pub async fn drain_status(&self) -> Option<DrainStatus> {
        self.drain_command(false, None).await
    }

    async fn drain_command(&self, start: bool, deadline: Option<Duration>) -> Option<DrainStatus> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Control::Drain {
                start,
                deadline,
                reply,
            })
            .ok()?;
        rx.await.ok()
    }
}

/// The running server's side: the configuration in force and the workers' queues.
pub(crate) struct Controller {
    pub(crate) config: Config,
    pub(crate) workers: Workers,
    /// The TCP accept loops' limiter (open connections and refusals, for metrics).
    pub(crate) limiter: Arc<crate::tcp::Limiter>,
    /// Publishes the configuration in force to every [`ServerControl`].
    pub(crate) config_tx: tokio::sync::watch::Sender<Arc<Config>>,
    /// A drain under way: when it started and its deadline.
    pub(crate) drain: Option<(Instant, Instant)>,
    /// When the drain last logged its progress.
    pub(crate) drain_logged: Option<Instant>,
    /// The in-kernel fast path.
    pub(crate) offload: crate::kernel::OffloadState,
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
            Control::Each(job) => self.each(&job),
            Control::Metrics(reply) => {
                let _ = reply.send(self.metrics().await);
            }
            Control::Drain {
                start,
                deadline,
                reply,
            } => {
                if start {
                    self.start_drain(deadline);
                }
                let _ = reply.send(self.drain_status().await);
            }
        }
    }

    fn each(&self, job: &Job) {
        for w in &self.workers {
            let _ = w.send(ToWorker::Run(Arc::clone(job)));
        }
    }

    /// Runs `f` on every worker and gathers the results.
    async fn gather<T: Send + 'static>(
        &self,
        f: impl Fn(&Shared) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.each(
            &(Arc::new(move |s: &Shared| {
                let _ = tx.send(f(s));
            }) as Job),
        );
        let mut all = Vec::new();
        while let Some(one) = rx.recv().await {
            all.push(one);
        }
        all
    }

    async fn metrics(&self) -> MetricsSnapshot {
        let parts = self.gather(crate::inspect::WorkerSnapshot::take).await;
        let mut m = MetricsSnapshot::sum(&parts, &self.config.relay);
        self.limiter.counters.add_to(&mut m.runtime);
        m.open_connections = self.limiter.open_now() as u64;
        m.draining = self.drain.is_some();
        m.cert_not_after = self.config.tls.as_ref().and_then(tls::not_after);
        m.offload = self.offload.status();
        m
    }

    fn start_drain(&mut self, deadline: Option<Duration>) {
        let now = Instant::now();
        // A deadline past what an Instant holds means "no deadline" in practice: a year.
        let wanted = deadline.unwrap_or(self.config.drain.deadline);
        let until = now
            .checked_add(wanted)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        match &mut self.drain {
            Some((_, d)) => {
                if deadline.is_some() {
                    *d = until;
                }
            }
            None => {
                self.drain = Some((now, until));
                self.each(&(Arc::new(|s: &Shared| s.core.borrow_mut().set_draining(true)) as Job));
                tracing::info!(
                    deadline_secs = until.saturating_duration_since(now).as_secs(),
                    "draining: new allocations go to a sibling (300) or get 508; the process stops when the last allocation ends or at the deadline"
                );
            }
        }
    }

    /// How far the drain is.
    pub(crate) async fn drain_status(&self) -> DrainStatus {
        let allocations = self
            .gather(|s| s.core.borrow().allocation_count())
            .await
            .into_iter()
            .sum();
        let now = Instant::now();
        DrainStatus {
            draining: self.drain.is_some(),
            allocations,
            since: self
                .drain
                .map(|(start, _)| now.saturating_duration_since(start)),
            deadline_in: self.drain.map(|(_, d)| d.saturating_duration_since(now)),
        }
    }

    /// Whether a drain is under way.
    pub(crate) fn draining(&self) -> bool {
        self.drain.is_some()
    }

    /// Whether the drain is over (the last allocation ended or the deadline passed);
    /// logs its progress every 10 s.
    pub(crate) async fn drain_done(&mut self) -> bool {
        let status = self.drain_status().await;
        let now = Instant::now();
        if status.allocations == 0 {
            tracing::info!("drained: the last allocation ended");
            return true;
        }
        if status.deadline_in == Some(Duration::ZERO) {
            tracing::info!(
                allocations = status.allocations,
                "drain deadline reached: stopping with allocations left"
            );
            return true;
        }
        if self
            .drain_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(10))
        {
            self.drain_logged = Some(now);
            tracing::info!(
                allocations = status.allocations,
                deadline_in_secs = status.deadline_in.map_or(0, |d| d.as_secs()),
                "draining"
            );
        }
        false
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
            ("offload", old.offload != new.offload),
            ("log.format", old.log.format != new.log.format),
            ("admin", old.admin != new.admin),
            ("metrics", old.metrics != new.metrics),
            (
                "credentials_service",
                old.credentials_service != new.credentials_service,
            ),
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
            ("drain", old.drain != new.drain),
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
            drain: new.drain,
            ..self.config.clone()
        };
        let core = Arc::new(next.core());
        for w in &self.workers {
            let _ = w.send(ToWorker::Reconfigure(Arc::clone(&core)));
            let _ = w.send(ToWorker::Tls(acceptor.clone()));
        }
        self.config = next;
        self.config_tx.send_replace(Arc::new(self.config.clone()));
        Ok(report)
    }
}
