//! # turnpike-server
//!
//! The runtime around the sans-IO core: tokio listeners on UDP and TCP that feed packets
//! and stream frames to [`turnpike_proto`] and send back what it answers. This is the only
//! crate of the server that owns sockets; the system calls on them that `std`, `socket2` and
//! tokio do not offer (`recvmmsg`/`sendmmsg` batches, UDP GSO, the ICMP error queue, the
//! relay sockets' epoll set) are `turnpike_udp`'s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use turnpike_server::{Config, Server};
//!
//! let mut config = Config::default();
//! config.listen.udp = vec!["127.0.0.1:3478".parse()?];
//! config.listen.tcp = vec![];
//! config.turn.secrets = vec!["a long random secret".into()];
//! let server = Server::bind(config)?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! ## Resource bounds
//!
//! - UDP: one socket per worker per listening address (`SO_REUSEPORT`), one fixed receive
//!   buffer and one response buffer per socket; nothing is allocated per packet. State per
//!   client lives in the core (an allocation, bounded by the quotas) and, for a moved
//!   client handed to another worker, one map entry until it is idle for an hour.
//! - TCP: a cap on connections in total and per source address, an idle timeout, and a
//!   per-connection buffer bounded by the largest legal frame; a client that does not read
//!   its responses stops being read (backpressure), and is dropped at the idle timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};
use turnpike_proto::quota::QuotaLedger;
use turnpike_proto::{CoreSetup, TimeBase, TurnServer};

pub mod busy;
pub mod config;
mod control;
mod counters;
mod handoff;
mod host;
pub mod ice;
mod inspect;
mod kernel;
mod notices;
mod offload_config;
pub mod operations;
mod peer_conns;
pub mod relay;
mod shared;
mod stream;
mod tcp;
mod tcp_relay;
pub mod tls;
mod worker;

pub use config::{Config, Invalid, Listen, Log, LogFormat, LogLevel, Runtime};
pub use control::{ReloadError, ReloadReport, ServerControl, WorkerStatus};
pub use counters::RuntimeCounts;
pub use ice::{IceServer, IceServers};
pub use inspect::{DrainStatus, MetricsSnapshot, RelayPortUse};
pub use kernel::{OffloadStatus, probe_offload, veths as offload_veths};
pub use offload_config::{OffloadMode, OffloadSection, XdpAttachMode};
pub use operations::{AdminSection, CredentialsService, DrainSection, MetricsSection};
pub use relay::{ExternalIp, RelayConfig};
pub use tcp::{DEFAULT_TCP_IDLE_TIMEOUT, TcpLimits};
pub use tls::TlsFiles;
pub use turnpike_offload::OffloadError;
pub use turnpike_proto::binding::Rfc5780Addresses;
pub use turnpike_proto::config::{Alternates, StunSection, TurnSection};
pub use turnpike_proto::server::{Revocation, Session, SessionFilter};

/// A transport a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// STUN over UDP.
    Udp,
    /// STUN over TCP (RFC 8489 §6.2.2).
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        })
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listener could not be bound.
    Bind {
        /// The address that failed.
        address: SocketAddr,
        /// The transport.
        transport: Transport,
        /// The OS error.
        source: io::Error,
    },
    /// A static user's password cannot be prepared (RFC 8265 OpaqueString).
    BadUser(turnpike_proto::auth::BadUser),
    /// The TLS certificate or key cannot be used.
    Tls(tls::TlsError),
    /// A listener's address is already held by another process ([`busy`]).
    Busy {
        /// The address.
        address: SocketAddr,
        /// The transport.
        transport: Transport,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bind {
                address,
                transport,
                source,
            } => write!(f, "cannot listen on {transport} {address}: {source}"),
            Self::BadUser(u) => write!(f, "user {:?}: password is not a valid OpaqueString", u.0),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Busy { address, transport } => write!(
                f,
                "{transport} {address} is already in use by another process"
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } => Some(source),
            Self::BadUser(_) | Self::Busy { .. } => None,
            Self::Tls(e) => Some(e),
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    /// UDP listener sockets, one group per worker.
    workers: Vec<Vec<std::net::UdpSocket>>,
    cores: Vec<TurnServer>,
    tcp: Vec<std::net::TcpListener>,
    bound: Vec<(Transport, SocketAddr)>,
    tcp_limits: TcpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    relay: Arc<RelayConfig>,
    ledger: Arc<Mutex<QuotaLedger>>,
    /// The configuration in force (a reload compares against it).
    config: Config,
    control: (
        ServerControl,
        tokio::sync::mpsc::UnboundedReceiver<control::Control>,
    ),
    /// Publishes the configuration in force to every [`ServerControl`].
    config_tx: tokio::sync::watch::Sender<Arc<Config>>,
    /// The in-kernel fast path (loaded at bind, detached when the server is dropped).
    offload: kernel::OffloadState,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("bound", &self.bound)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds every configured address and prepares one TURN core per worker. Port 0 picks
    /// a free port (the same one for every worker's socket of that address).
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound or that another process holds already
    /// (probed without `SO_REUSEPORT` just before binding, see [`busy`]), a bad static
    /// user, or TLS files that cannot be used.
    pub fn bind(mut config: Config) -> Result<Self, StartError> {
        // A core's shard is one byte (MOBILITY-TICKETs and CONNECTION-IDs carry it).
        let workers = config.runtime.worker_count();
        let mut bound = Vec::new();
        // RFC 5780 needs a socket on each of its four exact addresses.
        let mut udp_addresses = config.listen.udp.clone();
        if let Some(set) = &config.rfc5780 {
            for addr in set.listen_addresses() {
                if !udp_addresses.contains(&addr) {
                    udp_addresses.push(addr);
                }
            }
        }
        let mut groups: Vec<Vec<std::net::UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
        for &address in &udp_addresses {
            let err = |source| StartError::Bind {
                address,
                transport: Transport::Udp,
                source,
            };
            if busy::in_use(Transport::Udp, address).unwrap_or(false) {
                return Err(StartError::Busy {
                    address,
                    transport: Transport::Udp,
                });
            }
            let mut addr = address;
            let mut sockets = Vec::with_capacity(workers);
            for _ in 0..workers {
                match bind_udp(addr) {
                    Ok(s) => {
                        addr = s.local_addr().map_err(err)?;
                        sockets.push(s);
                    }
                    Err(e) if skippable(&config, address, &e) => {
                        warn!(%address, error = %e, "IPv6 unavailable, skipping UDP listener");
                        break;
                    }
                    Err(e) => return Err(err(e)),
                }
            }
            if sockets.len() == workers {
                bound.push((Transport::Udp, addr));
                for (group, socket) in groups.iter_mut().zip(sockets) {
                    group.push(socket);
                }
            }
        }
        let mut tcp = Vec::new();
        for &address in &config.listen.tcp {
            let err = |source| StartError::Bind {
                address,
                transport: Transport::Tcp,
                source,
            };
            if busy::in_use(Transport::Tcp, address).unwrap_or(false) {
                return Err(StartError::Busy {
                    address,
                    transport: Transport::Tcp,
                });
            }
            match bind_tcp(address) {
                Ok(l) => {
                    bound.push((Transport::Tcp, l.local_addr().map_err(err)?));
                    tcp.push(l);
                }
                Err(e) if skippable(&config, address, &e) => {
                    warn!(%address, error = %e, "IPv6 unavailable, skipping TCP listener");
                }
                Err(e) => return Err(err(e)),
            }
        }

        // One nonce key for every worker, so any of them accepts any nonce.
        let nonce_secret: [u8; 32] = rand::random();
        let time_base = TimeBase {
            instant: Instant::now(),
            unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        // The listeners as bound (port 0 resolved): no peer may be one of them.
        let of = |t: Transport| bound.iter().filter(move |b| b.0 == t).map(|b| b.1);
        config.bound = Some(Listen {
            udp: of(Transport::Udp).collect(),
            tcp: of(Transport::Tcp).collect(),
            public_name: config.listen.public_name.clone(),
        });
        // One configuration for every core, swappable as a whole.
        let core_config = Arc::new(config.core());
        let mut cores = Vec::with_capacity(workers);
        for shard in 0..workers {
            let setup = CoreSetup {
                nonce_secret: nonce_secret.to_vec(),
                time_base,
                rng_seed: rand::random(),
                // The worker's index: tickets and connection ids name the core that
                // holds their state, so any worker can hand a request there.
                shard: shard as u8,
            };
            let core =
                TurnServer::new(Arc::clone(&core_config), setup).map_err(StartError::BadUser)?;
            cores.push(core);
        }
        let tls = match &config.tls {
            Some(files) => Some(tls::acceptor(files).map_err(StartError::Tls)?),
            None => None,
        };
        // The fast path attaches where the UDP listeners and relay sockets are.
        let offload_on: Vec<IpAddr> = udp_addresses
            .iter()
            .map(SocketAddr::ip)
            .chain(config.relay.ips.iter().copied())
            .collect();
        let offload = kernel::OffloadState::start(&config.offload, &offload_on);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (config_tx, config_rx) = tokio::sync::watch::channel(Arc::new(config.clone()));
        Ok(Self {
            workers: groups,
            cores,
            tcp,
            bound,
            tcp_limits: config.tcp,
            tls,
            relay: Arc::new(config.relay.clone()),
            ledger: Arc::new(Mutex::new(QuotaLedger::default())),
            config,
            control: (
                ServerControl {
                    tx,
                    config: config_rx,
                },
                rx,
            ),
            config_tx,
            offload,
        })
    }

    /// The addresses actually bound, with their transports.
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.bound
    }

    /// The configuration it runs with (relay IPs and secrets resolved).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The relay IPs in use.
    pub fn relay_ips(&self) -> &[IpAddr] {
        &self.relay.ips
    }

    /// A handle to reload, redirect or query the server once it runs (commands sent
    /// before [`Server::run`] wait for it).
    pub fn control(&self) -> ServerControl {
        self.control.0.clone()
    }

    /// Serves until `shutdown` completes, then stops every worker and returns. UDP
    /// workers run on their own threads; TCP runs on the calling tokio runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        let ports = Arc::new(relay::PortsInUse::default());
        let parked = Arc::new(relay::ParkedRelays::default());
        let open_files = turnpike_udp::sys::raise_nofile_limit(0).unwrap_or(1024);
        info!(open_files, "descriptor limit");
        // A quarter of the descriptors at most for connected peer sockets.
        let peer_sockets = Arc::new(relay::PeerSocketBudget::new(
            usize::try_from(open_files / 4).unwrap_or(usize::MAX),
        ));
        // Every worker's queue first: each worker can hand work to any other.
        let (to_workers, mut queues): (handoff::Workers, Vec<_>) = (0..self.cores.len())
            .map(|_| tokio::sync::mpsc::unbounded_channel())
            .unzip();
        for (index, (listeners, core)) in self.workers.into_iter().zip(self.cores).enumerate() {
            let setup = worker::WorkerSetup {
                index,
                core,
                listeners,
                relay: Arc::clone(&self.relay),
                ledger: Arc::clone(&self.ledger),
                ports: Arc::clone(&ports),
                peer_sockets: Arc::clone(&peer_sockets),
                parked: Arc::clone(&parked),
                incoming: queues.remove(0),
                workers: to_workers.clone(),
                tls: self.tls.clone(),
                stream_limits: self.tcp_limits,
                kernel: self.offload.path.clone(),
            };
            let rx = stop_rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("turnpike-worker-{index}"))
                .spawn(move || worker::run_worker(setup, rx));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => warn!(error = %e, "cannot start worker thread"),
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        let limits = Arc::new(tcp::Limiter::new(self.tcp_limits));
        for listener in self.tcp {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    // Connections are dealt to the workers in turn.
                    let workers = to_workers.clone();
                    let mut next = 0usize;
                    tasks.spawn(tcp::accept_loop(
                        listener,
                        Arc::clone(&limits),
                        move |conn| {
                            if let Some(worker) = workers.get(next % workers.len().max(1)) {
                                let _ = worker.send(handoff::ToWorker::Accepted(conn));
                            }
                            next = next.wrapping_add(1);
                        },
                    ));
                }
                Err(e) => warn!(error = %e, "cannot register TCP listener"),
            }
        }
        for (transport, addr) in &self.bound {
            info!(%transport, %addr, "listening");
        }
        let (_keep, mut commands) = self.control;
        let mut controller = control::Controller {
            config: self.config,
            workers: to_workers,
            limiter: Arc::clone(&limits),
            config_tx: self.config_tx,
            drain: None,
            drain_logged: None,
            offload: self.offload,
        };
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(command) = commands.recv() => controller.handle(command).await,
                _ = tick.tick(), if controller.draining() => {
                    if controller.drain_done().await {
                        break;
                    }
                }
            }
        }
        info!("shutting down");
        let _ = stop_tx.send(true);
        tasks.shutdown().await;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn skippable(config: &Config, address: SocketAddr, err: &io::Error) -> bool {
    config.skip_unavailable_ipv6
        && address.is_ipv6()
        && address.ip().is_unspecified()
        && matches!(
            err.raw_os_error(),
            Some(libc_codes::EAFNOSUPPORT | libc_codes::EADDRNOTAVAIL)
        )
}

/// The two errno values that mean "this host has no IPv6" (Linux numbering).
mod libc_codes {
    pub(crate) const EAFNOSUPPORT: i32 = 97;
    pub(crate) const EADDRNOTAVAIL: i32 = 99;
}

fn new_socket(address: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), ty, Some(protocol))?;
    if address.is_ipv6() {
        // Keep IPv4 and IPv6 listeners independent so both can bind the same port.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_udp(address: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = new_socket(address, Type::DGRAM, Protocol::UDP)?;
    socket.set_reuse_port(true)?;
    // Room for bursts: the kernel caps this at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&address.into())?;
    Ok(socket.into())
}

fn bind_tcp(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = new_socket(address, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
