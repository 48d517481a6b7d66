//! Telling systemd how the server is doing (`sd_notify(3)`, for `Type=notify` units).
//!
//! - **READY=1** once every listener is bound and the admin surfaces are up ([`ready`]),
//!   with a `STATUS=` line naming the listeners.
//! - **RELOADING=1** (with `MONOTONIC_USEC=`, as systemd ≥ 253 asks) when a SIGHUP reload
//!   starts and **READY=1** when it is over, applied or refused ([`reloading`],
//!   [`reloaded`]), so `systemctl reload` returns once the reload is done.
//! - **STOPPING=1** when the process starts to stop ([`stopping`]) and when a drain
//!   starts, whoever asked for it (`turnpike ctl drain`, SIGTERM with `[drain]
//!   on_sigterm`): [`supervise`] sees it within one look. systemd then waits
//!   `TimeoutStopSec` for the process to exit, so that must exceed `[drain] deadline_secs`.
//! - **WATCHDOG=1** every half of `WATCHDOG_USEC` ([`supervise`]), and only after a round
//!   trip through every worker ([`ServerControl::drain_status`] runs a job on each worker
//!   between its packets) answered within a quarter of it: a wedged worker or controller
//!   stops the pings and systemd restarts the server (`WatchdogSec=`, `Restart=`).
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (not started by systemd). A
//! notification that cannot be sent is logged at debug level and otherwise ignored: it
//! must never stop the server.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};
use turnpike_server::ServerControl;
use turnpike_server::Transport;

/// How often [`supervise`] looks for a drain when no watchdog is asked for.
const LOOK_WITHOUT_WATCHDOG: Duration = Duration::from_secs(5);

/// The shortest interval between two looks, whatever `WATCHDOG_USEC` says.
const SHORTEST_LOOK: Duration = Duration::from_millis(10);

/// Whether systemd (or a test standing in for it) listens: `NOTIFY_SOCKET` is set.
fn listening() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

/// Sends `states` to the service manager, keeping `NOTIFY_SOCKET` for later calls.
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        debug!(error = %e, "cannot notify the service manager");
    }
}

/// READY=1: every listener is bound and the admin surfaces are up.
pub(crate) fn ready(listeners: &[(Transport, std::net::SocketAddr)]) {
    if !listening() {
        return;
    }
    let mut status = String::from("serving on");
    for (transport, addr) in listeners {
        status.push_str(&format!(" {transport} {addr}"));
    }
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// RELOADING=1: a reload asked by SIGHUP starts.
pub(crate) fn reloading() {
    if !listening() {
        return;
    }
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ]),
        Err(e) => {
            debug!(error = %e, "no monotonic clock for MONOTONIC_USEC");
            send(&[NotifyState::Reloading, NotifyState::Status("reloading")]);
        }
    }
}

/// READY=1 after [`reloading`], whether the new file was applied or refused (the
/// configuration in force stays then, and the server keeps serving).
pub(crate) fn reloaded(applied: bool) {
    let status = if applied {
        "serving; configuration reloaded"
    } else {
        "serving; reload refused, the configuration in force stays"
    };
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// STOPPING=1, with the reason as the status.
pub(crate) fn stopping(why: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(why)]);
}

/// The watchdog interval systemd asks for: `WATCHDOG_USEC`, when `WATCHDOG_PID` is
/// unset or names this process (the rule of `sd_watchdog_enabled(3)`).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog while the workers answer, and says STOPPING=1 when a drain
/// starts; returns when the server has stopped (or at once without `NOTIFY_SOCKET`).
pub(crate) async fn supervise(control: ServerControl) {
    if !listening() {
        return;
    }
    let watchdog = watchdog_interval();
    let every = watchdog
        .map_or(LOOK_WITHOUT_WATCHDOG, |w| w / 2)
        .max(SHORTEST_LOOK);
    // A ping is at most `every + answer_within` (3/4 of the interval) after the last.
    let answer_within = (every / 2).max(SHORTEST_LOOK);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    let mut late = false;
    loop {
        tick.tick().await;
        let status = match tokio::time::timeout(answer_within, control.drain_status()).await {
            Ok(Some(status)) => status,
            // The server's control task is gone: it has stopped.
            Ok(None) => return,
            Err(_) => {
                if !late {
                    warn!(
                        within_ms = answer_within.as_millis() as u64,
                        "the workers did not answer in time: the systemd watchdog is not fed"
                    );
                }
                late = true;
                continue;
            }
        };
        late = false;
        if watchdog.is_some() {
            send(&[NotifyState::Watchdog]);
        }
        if status.draining && !draining {
            let why = format!("draining: {} allocations left", status.allocations);
            send(&[NotifyState::Stopping, NotifyState::Status(&why)]);
        }
        draining = status.draining;
    }
}
