//! `/v1/sessions`: list, show and end allocations.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use turnpike_proto::ClientTransport;
use turnpike_server::SessionFilter;

use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::api::views::SessionView;

/// The query of `GET` and `DELETE /v1/sessions`, as sent (checked by [`Self::filter`]).
#[derive(Debug, Default, Deserialize)]
pub struct SessionQuery {
    /// A USERNAME, or the user part of TURN REST usernames.
    pub user: Option<String>,
    /// A peer IP with a permission or channel.
    pub peer: Option<String>,
    /// `udp`, `tcp` or `tls`.
    pub transport: Option<String>,
    /// `DELETE` only: `true` to end every session when no filter is given.
    pub all: Option<String>,
}

impl SessionQuery {
    /// The filter the query asks for.
    ///
    /// # Errors
    ///
    /// 400 naming the value that is not valid.
    pub fn filter(&self) -> Result<SessionFilter, ApiError> {
        let user = match self.user.as_deref() {
            Some("") => return Err(ApiError::bad_request("user must not be empty")),
            other => other.map(str::to_owned),
        };
        let peer = self
            .peer
            .as_deref()
            .map(|p| {
                p.parse()
                    .map_err(|_| ApiError::bad_request(format!("peer {p:?} is not an IP address")))
            })
            .transpose()?;
        let transport = self.transport.as_deref().map(transport).transpose()?;
        Ok(SessionFilter {
            id: None,
            user,
            peer,
            transport,
        })
    }

    /// The `all` flag.
    fn all(&self) -> Result<bool, ApiError> {
        match self.all.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "all must be true or false, not {other:?}"
            ))),
        }
    }
}

/// Parses a transport label.
fn transport(label: &str) -> Result<ClientTransport, ApiError> {
    ClientTransport::ALL
        .into_iter()
        .find(|t| t.as_str() == label)
        .ok_or_else(|| {
            ApiError::bad_request(format!("transport must be udp, tcp or tls, not {label:?}"))
        })
}

/// The query, or 400 when it does not decode.
fn query(q: Result<Query<SessionQuery>, QueryRejection>) -> Result<SessionQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A session number from the path: 400 when it is not decimal digits; `None` when it
/// is too large to name any session.
fn session_id(p: Result<Path<String>, PathRejection>) -> Result<Option<u64>, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "session id {id:?} is not a decimal number"
        )));
    }
    Ok(id.parse().ok())
}

/// How many sessions a delete ended.
#[derive(Debug, Serialize)]
pub struct Ended {
    /// Sessions ended.
    pub ended: usize,
}

/// `GET /v1/sessions`: the sessions the filter matches.
pub async fn list(
    State(state): State<ApiState>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let filter = query(q)?.filter()?;
    let sessions = state.control.sessions(filter).await;
    Ok(Json(sessions.into_iter().map(SessionView::from).collect()))
}

/// `GET /v1/sessions/{id}`.
pub async fn one(
    State(state): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionView>, ApiError> {
    let not_found = || ApiError::not_found("no such session");
    let id = session_id(p)?.ok_or_else(not_found)?;
    let filter = SessionFilter {
        id: Some(id),
        ..SessionFilter::default()
    };
    let session = state.control.sessions(filter).await.into_iter().next();
    session.map(|s| Json(s.into())).ok_or_else(not_found)
}

/// `DELETE /v1/sessions/{id}`: ends one session (its accounting line says "ended by
/// operator").
pub async fn end_one(
    State(state): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Ended>, ApiError> {
    let not_found = || ApiError::not_found("no such session");
    let id = session_id(p)?.ok_or_else(not_found)?;
    let filter = SessionFilter {
        id: Some(id),
        ..SessionFilter::default()
    };
    let ended = state.control.end_sessions(filter).await;
    if ended == 0 {
        return Err(not_found());
    }
    tracing::info!(session = id, "admin API: session ended");
    Ok(Json(Ended { ended }))
}

/// `DELETE /v1/sessions?user=...`: ends every session the filter matches; without a
/// filter only with `all=true`.
pub async fn end_many(
    State(state): State<ApiState>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<Ended>, ApiError> {
    let q = query(q)?;
    let filter = q.filter()?;
    let all = q.all()?;
    if filter == SessionFilter::default() && !all {
        return Err(ApiError::bad_request(
            "give a filter (user, peer, transport) or all=true to end every session",
        ));
    }
    let ended = state.control.end_sessions(filter.clone()).await;
    tracing::info!(
        ended,
        user = filter.user.as_deref().unwrap_or("*"),
        peer = ?filter.peer,
        transport = filter.transport.map_or("*", ClientTransport::as_str),
        "admin API: sessions ended"
    );
    Ok(Json(Ended { ended }))
}
