//! The bearer token check in front of every `/v1` route.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::api::ApiState;
use crate::api::error::ApiError;

/// Passes the request on when it carries `Authorization: Bearer TOKEN` with the token
/// in force (compared in constant time); otherwise 401 with `WWW-Authenticate: Bearer`
/// (RFC 6750 §3).
pub async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match given {
        Some(token) if bool::from(token.ct_eq(&state.token)) => next.run(request).await,
        Some(_) => unauthorized("wrong admin token", "error=\"invalid_token\""),
        None => unauthorized(
            "an admin token is required (Authorization: Bearer TOKEN)",
            "",
        ),
    }
}

/// A 401 with its challenge.
fn unauthorized(message: &str, params: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    let challenge = if params.is_empty() {
        "Bearer realm=\"turnpike\"".to_owned()
    } else {
        format!("Bearer realm=\"turnpike\", {params}")
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
