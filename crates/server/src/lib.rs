//! # turnpike-server
//!
//! The runtime around the sans-IO core: tokio listeners on UDP and TCP that feed packets
//! and stream frames to [`turnpike_proto`] and send back what it answers. This is the only
//! crate that touches sockets.
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

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};
use turnpike_proto::binding::BindingService;

mod tcp;
mod udp;

pub use tcp::TcpLimits;
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
    /// UDP sockets per address (one per worker thread); at least 1.
    pub udp_sockets_per_address: usize,
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
            udp_sockets_per_address: 1,
            skip_unavailable_ipv6: true,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub struct BindError {
    /// The address that failed.
    pub address: SocketAddr,
    /// The transport.
    pub transport: Transport,
    /// The OS error.
    pub source: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot listen on {} {}: {}",
            self.transport, self.address, self.source
        )
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
    bound: Vec<(Transport, SocketAddr)>,
    binding: Arc<BindingService>,
    tcp_limits: TcpLimits,
}

impl Server {
    /// Binds every configured address. Port 0 picks a free port (the same one for all
    /// the sockets of one address).
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound.
    pub fn bind(config: ServerConfig) -> Result<Self, BindError> {
        let mut server = Self {
            udp: Vec::new(),
            tcp: Vec::new(),
            bound: Vec::new(),
            binding: Arc::new(BindingService::new(config.binding.clone())),
            tcp_limits: config.tcp_limits,
        };
        let per_address = config.udp_sockets_per_address.max(1);
        for &address in &config.udp {
            let err = |source| BindError {
                address,
                transport: Transport::Udp,
                source,
            };
            let mut addr = address;
            let mut sockets = Vec::with_capacity(per_address);
            for _ in 0..per_address {
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
            if !sockets.is_empty() {
                server.bound.push((Transport::Udp, addr));
                server.udp.extend(sockets);
            }
        }
        for &address in &config.tcp {
            match bind_tcp(address) {
                Ok(l) => {
                    let local = l.local_addr().map_err(|source| BindError {
                        address,
                        transport: Transport::Tcp,
                        source,
                    })?;
                    server.bound.push((Transport::Tcp, local));
                    server.tcp.push(l);
                }
                Err(e) if skippable(&config, address, &e) => {
                    warn!(%address, error = %e, "IPv6 unavailable, skipping TCP listener");
                }
                Err(source) => {
                    return Err(BindError {
                        address,
                        transport: Transport::Tcp,
                        source,
                    });
                }
            }
        }
        Ok(server)
    }

    /// The addresses actually bound, with their transports.
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.bound
    }

    /// Serves until `shutdown` completes, then stops accepting and returns. Must be called
    /// inside a tokio runtime with IO and time enabled.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut tasks = tokio::task::JoinSet::new();
        for socket in self.udp {
            match tokio::net::UdpSocket::from_std(socket) {
                Ok(socket) => {
                    tasks.spawn(udp::serve(socket, Arc::clone(&self.binding)));
                }
                Err(e) => warn!(error = %e, "cannot register UDP socket"),
            }
        }
        let limits = Arc::new(tcp::Limiter::new(self.tcp_limits));
        for listener in self.tcp {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    tasks.spawn(tcp::accept_loop(
                        listener,
                        Arc::clone(&self.binding),
                        Arc::clone(&limits),
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
        tasks.shutdown().await;
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
