//! Prometheus metrics in text format (`GET /metrics`).

use axum::Router;
use turnpike_server::ServerControl;

/// The metrics' routes.
pub fn router(_control: ServerControl) -> Router {
    Router::new()
}
