//! The credentials service: `iceServers` with a fresh TURN REST credential for app
//! servers holding an API key.

use axum::Router;
use turnpike_server::{Config, ServerControl};

/// The credentials service's routes.
pub fn router(_config: &Config, _control: ServerControl) -> Router {
    Router::new()
}
