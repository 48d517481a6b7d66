//! The HTTP surfaces of a running turnpike, each on a listener of its own:
//!
//! - the **admin API** ([`api`]): HTTP/JSON behind a bearer token, loopback by default,
//!   what `turnpike ctl` talks to;
//! - **metrics** ([`metrics`]): Prometheus text format, loopback by default;
//! - the **credentials service** ([`credentials`]): `iceServers` with a fresh TURN REST
//!   credential for app servers holding an API key (off by default).
//!
//! They drive the server through its [`ServerControl`]; what only the binary can do
//! (read the configuration file again, change the log level) comes in through
//! [`Operator`]. Nothing here is on the packet path.

pub mod api;
pub mod credentials;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use turnpike_server::{Config, LogLevel, ReloadReport, ServerControl};

/// A boxed future, for [`Operator`]'s async method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the binary does for the admin API.
pub trait Operator: Send + Sync + 'static {
    /// Reads the configuration file again and applies it, as SIGHUP does.
    ///
    /// # Errors
    ///
    /// Why the file was refused (with its file, line and reason); the configuration in
    /// force stays.
    fn reload(&self) -> BoxFuture<'_, Result<ReloadReport, String>>;

    /// Sets the log level until the next reload or restart.
    ///
    /// # Errors
    ///
    /// The level cannot be changed (`RUST_LOG` decides it).
    fn set_log_level(&self, level: LogLevel) -> Result<(), String>;
}

/// The listeners that were started, and the admin token in force.
#[derive(Debug, Clone, Default)]
pub struct Surfaces {
    /// The admin API's address.
    pub admin: Option<SocketAddr>,
    /// Whether the admin token was generated (to print it once).
    pub admin_token_generated: Option<String>,
    /// The metrics' address.
    pub metrics: Option<SocketAddr>,
    /// The credentials service's address.
    pub credentials: Option<SocketAddr>,
}

/// A listener that could not be started.
#[derive(Debug)]
pub struct StartError {
    /// Which surface (`admin`, `metrics`, `credentials_service`).
    pub surface: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] cannot listen on {}: {}",
            self.surface, self.addr, self.source
        )
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Binds every enabled surface and serves it on the current runtime until the process
/// ends.
///
/// # Errors
///
/// A listener cannot be bound (or the admin token file cannot be read).
pub async fn start(
    config: &Config,
    control: ServerControl,
    operator: Arc<dyn Operator>,
) -> Result<Surfaces, StartError> {
    let mut surfaces = Surfaces::default();
    if config.admin.enabled {
        let (token, generated) = api::token(&config.admin).map_err(|source| StartError {
            surface: "admin",
            addr: config.admin.listen,
            source,
        })?;
        let router = api::router(control.clone(), operator, token);
        surfaces.admin = Some(serve("admin", config.admin.listen, router).await?);
        surfaces.admin_token_generated = generated;
    }
    if config.metrics.enabled {
        let router = metrics::router(control.clone());
        surfaces.metrics = Some(serve("metrics", config.metrics.listen, router).await?);
    }
    if config.credentials_service.enabled {
        let router = credentials::router(control);
        surfaces.credentials = Some(
            serve(
                "credentials_service",
                config.credentials_service.listen,
                router,
            )
            .await?,
        );
    }
    Ok(surfaces)
}

/// Binds `addr` and serves `router` on a task of its own; the bound address.
async fn serve(
    surface: &'static str,
    addr: SocketAddr,
    router: axum::Router,
) -> Result<SocketAddr, StartError> {
    let err = |source| StartError {
        surface,
        addr,
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(surface, error = %e, "HTTP listener stopped");
        }
    });
    Ok(local)
}
