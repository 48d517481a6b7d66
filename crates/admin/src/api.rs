//! The admin API: HTTP/JSON behind a bearer token, described by `openapi.yaml` beside
//! this crate (checked against the running server by the `admin_api` integration test).
//!
//! Every route except `GET /live`, `GET /ready` and the self-test page's two static files
//! needs `Authorization: Bearer TOKEN` ([`auth`]); a missing or wrong token gets 401 with `WWW-Authenticate: Bearer`. Errors
//! are JSON `{"error": "..."}` ([`error`]). Each call that changes something logs one
//! info line saying what, by the admin API.
//!
//! | route | what |
//! |---|---|
//! | `GET /live`, `GET /ready` | liveness; readiness (503 while draining) |
//! | `GET /v1/status` | version, uptime, workers, allocations, drain, totals |
//! | `GET/DELETE /v1/sessions`, `GET/DELETE /v1/sessions/{id}` | the allocations ([`sessions`]) |
//! | `GET/POST /v1/revocations`, `DELETE /v1/revocations/{name}` | revoked users ([`ops`]) |
//! | `GET/POST /v1/drain`, `POST /v1/reload`, `PUT /v1/log-level` | operations ([`ops`]) |
//! | `GET /selftest`, `GET /selftest.js` | the browser self-test page, no secret in it ([`selftest`]) |
//! | `POST /v1/selftest/ice-servers` | a short-lived TURN credential for that page ([`selftest`]) |

pub mod auth;
pub mod error;
pub mod ops;
pub mod selftest;
pub mod sessions;
pub mod views;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{delete, get, post, put};
use turnpike_server::{AdminSection, ServerControl};

use crate::Operator;
use crate::api::error::ApiError;

/// The token in force: configured, from its file, or generated (then also returned as
/// the second value, to be printed once).
///
/// # Errors
///
/// The token file cannot be read.
pub fn token(admin: &AdminSection) -> std::io::Result<(String, Option<String>)> {
    if !admin.token.is_empty() {
        return Ok((admin.token.clone(), None));
    }
    if let Some(file) = &admin.token_file {
        let text = std::fs::read_to_string(file)?;
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if line.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: the token file is empty", file.display()),
            ));
        }
        return Ok((line, None));
    }
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok((token.clone(), Some(token)))
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The running server.
    pub control: ServerControl,
    /// What only the binary can do (reload the file, set the log level).
    pub operator: Arc<dyn Operator>,
    /// The bearer token.
    pub token: Arc<[u8]>,
    /// When the API (and so, within a moment, the server) started: for `uptime_secs`.
    pub started: Instant,
}

/// The admin API's routes.
pub fn router(control: ServerControl, operator: Arc<dyn Operator>, token: String) -> Router {
    let state = ApiState {
        control,
        operator,
        token: token.into_bytes().into(),
        started: Instant::now(),
    };
    // Nested with `layer` (not `route_layer`): the fallback for unknown `/v1` routes
    // is behind the token too, so a caller without it learns nothing about the routes.
    let v1 = Router::new()
        .route("/status", get(ops::status))
        .route("/sessions", get(sessions::list).delete(sessions::end_many))
        .route(
            "/sessions/{id}",
            get(sessions::one).delete(sessions::end_one),
        )
        .route("/revocations", get(ops::revocations).post(ops::revoke))
        .route("/revocations/{name}", delete(ops::unrevoke))
        .route("/drain", get(ops::drain_status).post(ops::drain))
        .route("/reload", post(ops::reload))
        .route("/log-level", put(ops::log_level))
        .route("/selftest/ice-servers", post(selftest::ice_servers))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/live", get(|| async { "live\n" }))
        .route("/ready", get(ops::ready))
        .route("/selftest", get(selftest::page))
        .route("/selftest.js", get(selftest::script))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}
