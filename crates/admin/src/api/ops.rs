//! Status, readiness, revocations, drain, reload and log level.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use turnpike_server::{LogLevel, Revocation};

use crate::api::ApiState;
use crate::api::error::{ApiError, json_body};
use crate::api::sessions::Ended;
use crate::api::views::{DrainView, ReloadView, RevocationView, StatusView, Totals};

/// The longest drain deadline the API takes (30 days).
pub const MAX_DEADLINE_SECS: u64 = 30 * 86_400;

/// The latest revocation lapse time the API takes (2100-01-01, unix seconds).
pub const MAX_UNTIL: u64 = 4_102_444_800;

/// The longest name a revocation takes, in characters (a STUN USERNAME is at most 513
/// bytes, RFC 8489 §14.3).
pub const MAX_NAME_CHARS: usize = 513;

/// `GET /ready`: 200 `ready` while serving, 503 `draining` while draining (or stopped).
pub async fn ready(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    match state.control.drain_status().await {
        Some(d) if !d.draining => (StatusCode::OK, "ready\n"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "stopped\n"),
    }
}

/// `GET /v1/status`.
pub async fn status(State(state): State<ApiState>) -> Result<Json<StatusView>, ApiError> {
    let metrics = state
        .control
        .metrics()
        .await
        .ok_or_else(ApiError::stopped)?;
    let drain = state
        .control
        .drain_status()
        .await
        .ok_or_else(ApiError::stopped)?;
    let s = &metrics.stats;
    let g = &metrics.gauges;
    let totals = Totals {
        allocations_created: s.allocations_created,
        allocations_ended: s.allocations_closed,
        to_peer_packets: s.to_peer,
        to_client_packets: s.to_client,
        auth_failures: s.auth_failures.iter().sum(),
        redirected: s.redirected,
        permissions: g.permissions,
        channels: g.channels,
        open_connections: metrics.open_connections,
        revocations: g.revocations,
    };
    Ok(Json(StatusView {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        workers: metrics.workers,
        allocations: drain.allocations,
        redirecting: metrics.redirecting,
        draining: drain.draining,
        drain: drain.into(),
        totals,
    }))
}

/// `GET /v1/revocations`.
pub async fn revocations(State(state): State<ApiState>) -> Json<Vec<RevocationView>> {
    let all = state.control.revocations().await;
    Json(all.into_iter().map(RevocationView::from).collect())
}

/// The body of `POST /v1/revocations`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// A user (every REST credential minted for it) or a USERNAME as sent.
    pub name: String,
    /// Unix time it lapses; absent: a REST username's own expiry, else until lifted.
    pub until: Option<u64>,
}

/// `POST /v1/revocations`: refuses the name from now on and ends its allocations.
pub async fn revoke(State(state): State<ApiState>, body: Bytes) -> Result<Json<Ended>, ApiError> {
    let body: RevokeBody = json_body(&body, false)?;
    let chars = body.name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "name must have 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if body.until.is_some_and(|u| u > MAX_UNTIL) {
        return Err(ApiError::bad_request(format!(
            "until must be a unix time up to {MAX_UNTIL}"
        )));
    }
    let name = body.name.clone();
    let ended = state
        .control
        .revoke(Revocation {
            name: body.name,
            until: body.until,
        })
        .await;
    tracing::info!(name, until = ?body.until, ended, "admin API: revoked");
    Ok(Json(Ended { ended }))
}

/// What `DELETE /v1/revocations/{name}` lifted.
#[derive(Debug, Serialize)]
pub struct Unrevoked {
    /// The name no longer revoked.
    pub unrevoked: String,
}

/// `DELETE /v1/revocations/{name}`: lifts a revocation (404 if there was none).
pub async fn unrevoke(
    State(state): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Unrevoked>, ApiError> {
    let Path(name) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !state.control.unrevoke(name.clone()).await {
        return Err(ApiError::not_found(format!("{name:?} is not revoked")));
    }
    tracing::info!(name, "admin API: revocation lifted");
    Ok(Json(Unrevoked { unrevoked: name }))
}

/// The body of `POST /v1/drain`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainBody {
    /// The deadline from now; absent: `[drain] deadline_secs` (or the one in force).
    pub deadline_secs: Option<u64>,
}

/// `POST /v1/drain`: starts draining (or moves the deadline); how far it is.
pub async fn drain(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Json<DrainView>, ApiError> {
    let body: DrainBody = json_body(&body, true)?;
    if body.deadline_secs.is_some_and(|d| d > MAX_DEADLINE_SECS) {
        return Err(ApiError::bad_request(format!(
            "deadline_secs must be at most {MAX_DEADLINE_SECS}"
        )));
    }
    let status = state
        .control
        .drain(body.deadline_secs.map(Duration::from_secs))
        .await
        .ok_or_else(ApiError::stopped)?;
    tracing::info!(
        deadline_secs = ?status.deadline_in.map(|d| d.as_secs()),
        allocations = status.allocations,
        "admin API: drain asked"
    );
    Ok(Json(status.into()))
}

/// `GET /v1/drain`.
pub async fn drain_status(State(state): State<ApiState>) -> Result<Json<DrainView>, ApiError> {
    let status = state
        .control
        .drain_status()
        .await
        .ok_or_else(ApiError::stopped)?;
    Ok(Json(status.into()))
}

/// `POST /v1/reload`: reads the configuration file again, as SIGHUP does; 422 with the
/// reason (file, line) when it is refused.
pub async fn reload(State(state): State<ApiState>) -> Result<Json<ReloadView>, ApiError> {
    tracing::info!("admin API: reload asked");
    state
        .operator
        .reload()
        .await
        .map(|r| Json(r.into()))
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))
}

/// The body of `PUT /v1/log-level`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLevelBody {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
}

/// The level in force after `PUT /v1/log-level`.
#[derive(Debug, Serialize)]
pub struct LogLevelView {
    /// The level now.
    pub level: &'static str,
}

/// `PUT /v1/log-level`: 400 for an unknown level, 409 when `RUST_LOG` decides it.
pub async fn log_level(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Json<LogLevelView>, ApiError> {
    let body: LogLevelBody = json_body(&body, false)?;
    let level = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ]
    .into_iter()
    .find(|l| l.as_str() == body.level)
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown level {:?} (error, warn, info, debug, trace)",
            body.level
        ))
    })?;
    state
        .operator
        .set_log_level(level)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    tracing::info!(level = level.as_str(), "admin API: log level set");
    Ok(Json(LogLevelView {
        level: level.as_str(),
    }))
}
