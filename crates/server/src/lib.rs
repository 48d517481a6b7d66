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
//! use turnpike_server::{Server, ServerConfig};
//!
//! let mut config = ServerConfig::default();
//! config.udp = vec!["127.0.0.1:3478".parse()?];
//! let server = Server::bind(config)?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! ## Resource bounds
//!
//! - UDP: one socket per worker per listening address (`SO_REUSEPORT`), one fixed receive
//!   buffer and one response buffer per socket; nothing is allocated per packet and no
//!   state is kept per client.
//! - TCP: a cap on connections in total and per source address, an idle timeout, and a
//!   per-connection buffer bounded by the largest legal frame; a client that does not read
//!   its responses stops being read (backpressure), and is dropped at the idle timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};
use turnpike_proto::policy::PeerPolicy;
use turnpike_proto::quota::{QuotaLedger, Quotas};
use turnpike_proto::{TimeBase, TurnConfig, TurnServer};

pub mod relay;
mod stream;
mod tcp;
mod tcp_relay;
pub mod tls;
mod worker;

pub use relay::{ExternalIp, RelayConfig};
pub use tcp::TcpLimits;
pub use turnpike_proto::Alternates;
pub use turnpike_proto::binding::BindingConfig;

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

/// Everything the runtime needs, as plain Rust values (the binary maps its TOML here).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP addresses to listen on.
    pub udp: Vec<SocketAddr>,
    /// TCP addresses to listen on.
    pub tcp: Vec<SocketAddr>,
    /// The Binding service's settings.
    pub binding: BindingConfig,
    /// Limits for TCP connections.
    pub tcp_limits: TcpLimits,
    /// Certificate and key for TLS on the TCP listeners; without it, TCP is plain only.
    pub tls: Option<tls::TlsFiles>,
    /// UDP worker threads, each with its own socket per UDP address; at least 1.
    pub workers: usize,
    /// The TURN service.
    pub turn: TurnSettings,
    /// Where relay sockets are bound.
    pub relay: RelayConfig,
    /// Skip an unspecified IPv6 address (`[::]`) when the host has no IPv6, instead of
    /// failing; any other bind failure is an error.
    pub skip_unavailable_ipv6: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            udp: Vec::new(),
            tcp: Vec::new(),
            binding: BindingConfig::default(),
            tcp_limits: TcpLimits::default(),
            tls: None,
            workers: 1,
            turn: TurnSettings::default(),
            relay: RelayConfig::default(),
            skip_unavailable_ipv6: true,
        }
    }
}

/// Settings of the TURN service (the sans-IO core's, minus what the runtime supplies).
#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// REALM.
    pub realm: String,
    /// TURN REST shared secrets (all accepted: rotation).
    pub secrets: Vec<Vec<u8>>,
    /// Static users: (username, password).
    pub users: Vec<(String, String)>,
    /// Longest allocation lifetime.
    pub max_lifetime: Duration,
    /// Nonce validity.
    pub nonce_lifetime: Duration,
    /// End allocations when their REST credential expires.
    pub strict_expiry: bool,
    /// Refuse channel numbers above 0x4FFF (RFC 8656) instead of accepting RFC 5766's range.
    pub strict_channel_numbers: bool,
    /// Peer address policy.
    pub peer_policy: PeerPolicy,
    /// Quotas and bandwidth cap.
    pub quotas: Quotas,
    /// ALTERNATE-SERVER lists per client transport (300 Try Alternate when full).
    pub alternates: Alternates,
    /// ALTERNATE-DOMAIN sent with alternates for TLS clients.
    pub alternate_domain: Option<String>,
    /// Send every new Allocate to an alternate (draining).
    pub redirect: bool,
    /// RFC 8016 mobility tickets.
    pub mobility: bool,
    /// RFC 6062 TCP relays. With it, every TCP/TLS client is served by the first worker,
    /// so a ConnectionBind finds the allocation its CONNECTION-ID belongs to.
    pub tcp_relay: bool,
    /// ICMP errors relayed per allocation per second (0 = unlimited).
    pub icmp_per_second: u32,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            realm: "turnpike".into(),
            secrets: Vec::new(),
            users: Vec::new(),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
            strict_expiry: false,
            strict_channel_numbers: false,
            peer_policy: PeerPolicy::default(),
            quotas: Quotas::default(),
            alternates: Alternates::default(),
            alternate_domain: None,
            redirect: false,
            mobility: false,
            tcp_relay: true,
            icmp_per_second: 10,
        }
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
    BadUser(String),
    /// The TLS certificate or key cannot be used.
    Tls(tls::TlsError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bind {
                address,
                transport,
                source,
            } => write!(f, "cannot listen on {transport} {address}: {source}"),
            Self::BadUser(u) => write!(f, "user {u:?}: password is not a valid OpaqueString"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound, not yet running server.
pub struct Server {
    /// UDP listener sockets, one group per worker.
    workers: Vec<Vec<std::net::UdpSocket>>,
    cores: Vec<TurnServer>,
    tcp: Vec<std::net::TcpListener>,
    bound: Vec<(Transport, SocketAddr)>,
    tcp_limits: TcpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tcp_relay: bool,
    relay: Arc<RelayConfig>,
    ledger: Arc<Mutex<QuotaLedger>>,
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
    /// The first address that cannot be bound, or a bad static user.
    pub fn bind(config: ServerConfig) -> Result<Self, StartError> {
        let workers = config.workers.max(1);
        let mut bound = Vec::new();
        // RFC 5780 needs a socket on each of its four exact addresses.
        let mut udp_addresses = config.udp.clone();
        if let Some(set) = &config.binding.rfc5780 {
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
        for &address in &config.tcp {
            let err = |source| StartError::Bind {
                address,
                transport: Transport::Tcp,
                source,
            };
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
        let mut cores = Vec::with_capacity(workers);
        for _ in 0..workers {
            let t = &config.turn;
            let core = TurnServer::new(TurnConfig {
                realm: t.realm.clone(),
                secrets: t.secrets.clone(),
                users: t.users.clone(),
                nonce_secret: nonce_secret.to_vec(),
                nonce_lifetime: t.nonce_lifetime,
                max_lifetime: t.max_lifetime,
                strict_expiry: t.strict_expiry,
                strict_channel_numbers: t.strict_channel_numbers,
                peer_policy: t.peer_policy.clone(),
                quotas: t.quotas,
                software: config.binding.software.clone(),
                rfc5780: config.binding.rfc5780,
                time_base,
                rng_seed: rand::random(),
                alternates: t.alternates.clone(),
                alternate_domain: t.alternate_domain.clone(),
                redirect: t.redirect,
                mobility: t.mobility,
                tcp_relay: t.tcp_relay,
                icmp_per_second: t.icmp_per_second,
                ..TurnConfig::new(t.realm.clone(), time_base)
            })
            .map_err(|e| StartError::BadUser(e.0))?;
            cores.push(core);
        }
        let tls = match &config.tls {
            Some(files) => Some(tls::acceptor(files).map_err(StartError::Tls)?),
            None => None,
        };
        Ok(Self {
            workers: groups,
            cores,
            tcp,
            bound,
            tcp_limits: config.tcp_limits,
            tls,
            tcp_relay: config.turn.tcp_relay,
            relay: Arc::new(config.relay),
            ledger: Arc::new(Mutex::new(QuotaLedger::default())),
        })
    }

    /// The addresses actually bound, with their transports.
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.bound
    }

    /// The relay IPs in use.
    pub fn relay_ips(&self) -> &[IpAddr] {
        &self.relay.ips
    }

    /// Serves until `shutdown` completes, then stops every worker and returns. UDP
    /// workers run on their own threads; TCP runs on the calling tokio runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        let mut to_workers = Vec::new();
        let ports = Arc::new(relay::PortsInUse::default());
        let open_files = turnpike_udp::sys::raise_nofile_limit(0).unwrap_or(1024);
        info!(open_files, "descriptor limit");
        // A quarter of the descriptors at most for connected peer sockets.
        let peer_sockets = Arc::new(relay::PeerSocketBudget::new(
            usize::try_from(open_files / 4).unwrap_or(usize::MAX),
        ));
        for (index, (listeners, core)) in self.workers.into_iter().zip(self.cores).enumerate() {
            let (conn_tx, conn_rx) = tokio::sync::mpsc::unbounded_channel();
            to_workers.push(conn_tx);
            let setup = worker::WorkerSetup {
                index,
                core,
                listeners,
                relay: Arc::clone(&self.relay),
                ledger: Arc::clone(&self.ledger),
                ports: Arc::clone(&ports),
                peer_sockets: Arc::clone(&peer_sockets),
                incoming: conn_rx,
                tls: self.tls.clone(),
                stream_limits: self.tcp_limits,
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
        if self.tcp_relay {
            to_workers.truncate(1);
        }
        let mut tasks = tokio::task::JoinSet::new();
        let limits = Arc::new(tcp::Limiter::new(self.tcp_limits));
        for listener in self.tcp {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    tasks.spawn(tcp::accept_loop(
                        listener,
                        Arc::clone(&limits),
                        to_workers.clone(),
                    ));
                }
                Err(e) => warn!(error = %e, "cannot register TCP listener"),
            }
        }
        for (transport, addr) in &self.bound {
            info!(%transport, %addr, "listening");
        }
        shutdown.await;
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

fn skippable(config: &ServerConfig, address: SocketAddr, err: &io::Error) -> bool {
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

/// Default TCP idle timeout: RFC 8489 §6.2.2 suggests servers keep connections open for
/// at least 10 seconds after a transaction; five minutes matches a TURN refresh cycle.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
