//! A worker: one thread, one current-thread runtime, one [`TurnServer`], its own
//! `SO_REUSEPORT` listener sockets and the relay sockets of the allocations it made.
//!
//! Shared-nothing on the packet path: the kernel's reuseport hash keeps a client's 5-tuple
//! on one worker, and an allocation's relay socket is owned by the worker that received its
//! Allocate. Shared between workers, and touched only off the packet path: the quota
//! ledger and the relay port set (on Allocate and deletion), reserved ports parked for any
//! worker to claim, and the queues through which a worker hands another worker a client
//! whose state lives there (`crate::handoff`).
//!
//! Data path: listener sockets are read with `recvmmsg` batches;
//! the relay sockets of all allocations sit in one level-triggered epoll set
//! ([`Poller`]), itself one tokio registration, so one `epoll_wait` names every relay
//! socket with data and each is read once per round with `recvmmsg`. Whatever a batch
//! produces leaves with one `sendmmsg` per sending socket. Sends never block: a full
//! socket buffer drops the datagram, as the network would, instead of stalling every other
//! client of the worker.
//!
//! Modules, by job: [`shared`] (the state every task of the worker shares and the ways
//! out), [`host`] (the core's [`Host`]: relay sockets, reservations, quotas), [`udp`]
//! (the listener and relay loops), and here the thread, its start and the timer that
//! drives the core's sweep.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};
use turnpike_proto::quota::QuotaLedger;
use turnpike_proto::{HashMap, Host, RelayId, TurnServer};
use turnpike_udp::Poller;

use crate::handoff::{Moved, ToWorker, Workers};
use crate::peer_conns::PeerConns;
use crate::relay::{ParkedRelays, PeerSocketBudget, PortsInUse, RelayConfig};
use crate::stream;
use crate::tcp::TcpLimits;
use crate::tcp_relay;

use self::udp::{listener_loop, relay_loop};
use crate::control::WorkerStatus;
use crate::host::{Start, WorkerHost};
pub(crate) use crate::shared::{MAX_DATAGRAM, Shared};

mod udp;

/// Everything a worker thread needs to start.
pub(crate) struct WorkerSetup {
    pub(crate) index: usize,
    pub(crate) core: TurnServer,
    pub(crate) listeners: Vec<std::net::UdpSocket>,
    pub(crate) relay: Arc<RelayConfig>,
    pub(crate) ledger: Arc<Mutex<QuotaLedger>>,
    pub(crate) ports: Arc<PortsInUse>,
    pub(crate) peer_sockets: Arc<PeerSocketBudget>,
    pub(crate) parked: Arc<ParkedRelays>,
    pub(crate) incoming: mpsc::UnboundedReceiver<ToWorker>,
    pub(crate) workers: Workers,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) stream_limits: TcpLimits,
    /// The in-kernel fast path, when `[offload]` loaded.
    pub(crate) kernel: Option<Arc<crate::kernel::KernelPath>>,
}

/// Runs a worker until `shutdown` flips to true. Call on its own thread.
pub(crate) fn run_worker(setup: WorkerSetup, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!(error = %e, "worker runtime failed to start");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let index = setup.index;
        let Some((shared, poller, mut incoming, mut to_start)) = start(setup) else {
            return;
        };
        // What the host asked for during core calls: started here, where the shared
        // state is.
        let starter = Rc::clone(&shared);
        tokio::task::spawn_local(async move {
            while let Some(start) = to_start.recv().await {
                tcp_relay::start(&starter, start);
            }
        });
        let acceptor = Rc::clone(&shared);
        tokio::task::spawn_local(async move {
            // Answers to datagrams handed over by other workers, one buffer for all.
            let mut answer = vec![0u8; MAX_DATAGRAM + 1024];
            while let Some(message) = incoming.recv().await {
                match message {
                    ToWorker::Accepted(conn) => {
                        tokio::task::spawn_local(stream::serve(Rc::clone(&acceptor), conn));
                    }
                    ToWorker::Stream(handed) => {
                        tokio::task::spawn_local(stream::resume(Rc::clone(&acceptor), handed));
                    }
                    ToWorker::Datagram { from, datagram } => {
                        acceptor.handle_forwarded(from, &datagram, &mut answer);
                    }
                    ToWorker::Reconfigure(config) => {
                        if let Err(e) = acceptor.core.borrow_mut().reconfigure(config) {
                            warn!(worker = index, user = %e.0, "reload: bad static user; kept the old configuration");
                        }
                    }
                    ToWorker::Tls(tls) => *acceptor.tls.borrow_mut() = tls,
                    ToWorker::Run(job) => job(&acceptor),
                    ToWorker::Redirect(on) => acceptor.core.borrow_mut().set_redirect(on),
                    ToWorker::Status(reply) => {
                        let core = acceptor.core.borrow();
                        let _ = reply.send(WorkerStatus {
                            worker: index,
                            allocations: core.allocation_count(),
                            redirecting: core.redirecting(),
                            stats: core.stats(),
                        });
                    }
                }
            }
        });
        for (&addr, socket) in &shared.listeners {
            tokio::task::spawn_local(listener_loop(Rc::clone(&shared), addr, Rc::clone(socket)));
        }
        tokio::task::spawn_local(relay_loop(Rc::clone(&shared), poller));
        tokio::task::spawn_local(timer_loop(Rc::clone(&shared)));
        let _ = shutdown.wait_for(|stop| *stop).await;
        let stats = shared.core.borrow().stats();
        info!(worker = index, ?stats, "worker stopping");
        // Dropping the relay sockets' tasks breaks the Rc cycle through `Shared`.
        let relays: Vec<RelayId> = shared.host.borrow().relays.keys().copied().collect();
        for id in relays {
            shared.host.borrow_mut().release_relay(id);
        }
    });
}

/// A started worker: its shared state, its relay poller, the queue of what other workers
/// hand it, and the queue of tasks its host asks for.
type Started = (
    Rc<Shared>,
    Rc<AsyncFd<Poller>>,
    mpsc::UnboundedReceiver<ToWorker>,
    mpsc::UnboundedReceiver<Start>,
);

/// Builds a worker's shared state from its setup: its listener sockets registered with
/// the current runtime and its relay poller. Returns the state, the poller and the queue
/// of connections handed to this worker; `None` when the poller cannot be made.
fn start(setup: WorkerSetup) -> Option<Started> {
    let mut listeners = HashMap::default();
    for socket in setup.listeners {
        let Ok(addr) = socket.local_addr() else {
            continue;
        };
        match UdpSocket::from_std(socket) {
            Ok(s) => {
                listeners.insert(addr, Rc::new(s));
            }
            Err(e) => warn!(error = %e, "cannot register UDP listener"),
        }
    }
    let seed = (setup.index as u64 + 1).wrapping_mul(0x9E37_79B9) ^ u64::from(std::process::id());
    let poller = match Poller::new().and_then(Poller::register) {
        Ok(p) => Rc::new(p),
        Err(e) => {
            warn!(error = %e, "worker cannot create its relay poller");
            return None;
        }
    };
    let (starts, to_start) = mpsc::unbounded_channel();
    let shared = Rc::new(Shared {
        index: setup.index,
        workers: setup.workers,
        moved: RefCell::new(Moved::default()),
        moved_any: Cell::new(false),
        timer_armed: Cell::new(false),
        relay: Arc::clone(&setup.relay),
        core: RefCell::new(setup.core),
        timer: tokio::sync::Notify::new(),
        host: RefCell::new(WorkerHost {
            relay: setup.relay,
            relays: HashMap::default(),
            poller: Rc::clone(&poller),
            tcp_relays: HashMap::default(),
            next_id: 0,
            ledger: setup.ledger,
            ports: setup.ports,
            peer_sockets: setup.peer_sockets,
            parked: setup.parked,
            unparked: HashMap::default(),
            peer_conns: PeerConns::default(),
            shard: setup.index as u8,
            starts,
            rng: seed | 1,
            released: Vec::new(),
            in_batch: false,
            bind_failures: (None, 0),
            kernel: setup.kernel.map(crate::kernel::WorkerKernel::new),
        }),
        listeners,
        streams: RefCell::new(HashMap::default()),
        tls: RefCell::new(setup.tls),
        stream_limits: setup.stream_limits,
        counters: crate::counters::WorkerCounters::default(),
        auth_notices: crate::notices::Budget::new(),
        peer_notices: crate::notices::Budget::new(),
    });
    Some((shared, poller, setup.incoming, to_start))
}

/// How often the timer looks at handed-over UDP clients while the core has no deadline.
const MOVED_SWEEP: Duration = Duration::from_secs(60);

/// Drives the core's sweep: sleeps until [`TurnServer::poll_timeout`], or until the core
/// gets a deadline while it had none ([`Shared::with_core`] wakes it), then runs
/// `handle_timeout` and sends what it queued.
async fn timer_loop(shared: Rc<Shared>) {
    loop {
        let deadline = shared.core.borrow().poll_timeout();
        let deadline = match (deadline, shared.moved.borrow().is_empty()) {
            (Some(t), true) => Some(t),
            (Some(t), false) => Some(t.min(Instant::now() + MOVED_SWEEP)),
            (None, false) => Some(Instant::now() + MOVED_SWEEP),
            (None, true) => None,
        };
        shared.timer_armed.set(deadline.is_some());
        match deadline {
            Some(t) => {
                let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(t));
                tokio::select! {
                    () = sleep => {}
                    () = shared.timer.notified() => continue,
                }
            }
            None => {
                shared.timer.notified().await;
                continue;
            }
        }
        let now = Instant::now();
        let any = {
            let mut moved = shared.moved.borrow_mut();
            moved.expire(now);
            !moved.is_empty()
        };
        shared.moved_any.set(any);
        if shared
            .core
            .borrow()
            .poll_timeout()
            .is_some_and(|t| t <= now)
        {
            shared.with_core(|core, host| core.handle_timeout(now, host));
            // Answers the sweep produced (a Connect that timed out gets its 447).
            loop {
                let Some(t) = shared.core.borrow_mut().poll_transmit() else {
                    break;
                };
                shared.send_answer_to_client(t.to, &t.message);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
