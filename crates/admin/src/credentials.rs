//! The credentials service: `iceServers` with a fresh TURN REST credential for app
//! servers holding an API key.
//!
//! The shape follows the hosted TURN services' APIs, so a client written for one of them
//! needs only the URL and the key changed:
//!
//! - `POST /v1/credentials` with a JSON body `{"ttl": 3600, "id": "alice"}` (both
//!   optional; an empty body takes the defaults), or `GET /v1/credentials?ttl=3600&id=alice`;
//!   `Authorization: Bearer KEY` with one of `[credentials_service] api_keys`. The answer:
//!
//!   ```json
//!   {"iceServers": [{"urls": ["stun:HOST:3478"]},
//!                   {"urls": ["turn:HOST:3478?transport=udp", ...],
//!                    "username": "1700086400:alice", "credential": "..."}],
//!    "username": "1700086400:alice", "credential": "...", "ttl": 3600,
//!    "expires_at": 1700086400}
//!   ```
//!
//!   `ttl` defaults to `default_ttl_secs`; above `max_ttl_secs` or 0 is a 400. `id` is the
//!   user part of the TURN REST username (what quotas and revocations by user key on); by
//!   default a random one. The credential is minted with the first `[turn] secrets`
//!   entry (draft-uberti-behave-turn-rest-00 §2.2: username `<expiry>:<id>`, password
//!   base64(HMAC-SHA1(secret, username))); the list comes from [`IceServers`], the one
//!   builder `turnpike credentials --json` uses too.
//! - `DELETE /v1/credentials/{username}` revokes a credential it minted (a REST username)
//!   until that credential's own expiry and ends its allocations: `{"ended": N}`.
//!
//! Errors are JSON `{"error": "..."}`: 401 without a valid key, 400 for unknown fields,
//! a bad `ttl` or `id`. The section is read at start (changing it needs a restart).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use turnpike_proto::auth::rest::mint;
use turnpike_server::{Config, IceServers, Revocation, ServerControl};

/// The longest `id` accepted, in bytes (the whole username must fit STUN's 513).
const MAX_ID_LEN: usize = 128;

/// The credentials service's routes.
pub fn router(control: ServerControl) -> Router {
    let service = Arc::new(Service { control });
    Router::new()
        .route(
            "/v1/credentials",
            get(get_credentials).post(post_credentials),
        )
        .route("/v1/credentials/{username}", delete(revoke))
        .with_state(service)
}

/// What the handlers share.
struct Service {
    control: ServerControl,
}

impl Service {
    /// A minter with the configuration in force (a reload's secrets apply at once).
    fn minter(&self) -> Minter {
        Minter::new(self.control.config())
    }
}

/// Checks keys and mints credentials (no I/O).
struct Minter {
    /// The configuration in force: API keys, TTLs, secrets, listeners for `iceServers`.
    config: Arc<Config>,
    /// The secret credentials are minted with (`[turn] secrets`' first).
    secret: Option<String>,
}

/// What a caller asks for (the JSON body or the query string).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    /// Seconds the credential lasts.
    ttl: Option<u64>,
    /// The user part of the username.
    id: Option<String>,
}

/// The answer to a mint.
#[derive(Debug, Serialize)]
struct Minted {
    #[serde(flatten)]
    ice: IceServers,
    username: String,
    credential: String,
    ttl: u64,
    expires_at: u64,
}

/// The answer to a revocation.
#[derive(Debug, Serialize)]
struct Ended {
    ended: usize,
}

/// Why a request was refused.
#[derive(Debug)]
enum Refusal {
    /// No API key, or not one of ours.
    Unauthorized,
    /// The request is malformed; the message says how.
    BadRequest(String),
    /// No `[turn] secrets` to mint with.
    NoSecret,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a valid API key is required (Authorization: Bearer KEY)".to_owned(),
            ),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::NoSecret => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no [turn] secrets to mint credentials with".to_owned(),
            ),
        };
        let body = axum::Json(serde_json::json!({ "error": message }));
        let mut resp = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl Minter {
    /// A minter for `config`.
    fn new(config: Arc<Config>) -> Self {
        let secret = config.turn.secrets.first().cloned();
        Self { config, secret }
    }

    /// Checks the bearer key against every configured key in constant time (each
    /// comparison runs whatever the outcome of the others).
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(Refusal::Unauthorized)?;
        let mut ok = subtle::Choice::from(0u8);
        for key in &self.config.credentials_service.api_keys {
            ok |= key.as_bytes().ct_eq(presented.as_bytes());
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(Refusal::Unauthorized)
        }
    }

    /// Mints a credential for `ask` at `now` (unix seconds).
    fn mint(&self, ask: Ask, now: u64) -> Result<Minted, Refusal> {
        let secret = self.secret.as_deref().ok_or(Refusal::NoSecret)?;
        let section = &self.config.credentials_service;
        let max = section.max_ttl.as_secs();
        let ttl = ask.ttl.unwrap_or(section.default_ttl.as_secs());
        if ttl == 0 || ttl > max {
            return Err(Refusal::BadRequest(format!(
                "ttl must be 1..={max} seconds"
            )));
        }
        let id = match ask.id {
            Some(id) => {
                check_id(&id)?;
                id
            }
            None => random_id(),
        };
        let expires_at = now.saturating_add(ttl);
        let (username, credential) = mint(secret.as_bytes(), &id, expires_at);
        Ok(Minted {
            ice: IceServers::new(&self.config, &username, &credential),
            username,
            credential,
            ttl,
            expires_at,
        })
    }
}

/// `GET /v1/credentials?ttl=…&id=…`.
async fn get_credentials(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    query: Result<Query<Ask>, QueryRejection>,
) -> Result<axum::Json<Minted>, Refusal> {
    service.minter().authorize(&headers)?;
    let Query(ask) = query.map_err(|e| Refusal::BadRequest(e.body_text()))?;
    service.minter().mint(ask, unix_now()).map(axum::Json)
}

/// `POST /v1/credentials` with an optional JSON body.
async fn post_credentials(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Minted>, Refusal> {
    service.minter().authorize(&headers)?;
    let ask = if body.iter().all(u8::is_ascii_whitespace) {
        Ask::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Refusal::BadRequest(format!("bad JSON body: {e}")))?
    };
    service.minter().mint(ask, unix_now()).map(axum::Json)
}

/// `DELETE /v1/credentials/{username}`: revokes a minted (REST) username until its own
/// expiry, ending its allocations.
async fn revoke(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<axum::Json<Ended>, Refusal> {
    service.minter().authorize(&headers)?;
    // Only what this service mints: `<expiry>:<id>`. A bare name would revoke a static
    // user, or every credential of a user, until lifted: that is the admin API's job.
    let rest = username
        .split_once(':')
        .filter(|(expiry, id)| {
            !expiry.is_empty() && expiry.bytes().all(|b| b.is_ascii_digit()) && check_id(id).is_ok()
        })
        .is_some();
    if !rest {
        return Err(Refusal::BadRequest(
            "not a username this service mints (<expiry>:<id>)".to_owned(),
        ));
    }
    let ended = service
        .control
        .revoke(Revocation {
            name: username,
            until: None,
        })
        .await;
    Ok(axum::Json(Ended { ended }))
}

/// An `id` is the user part of a REST username: not empty, at most [`MAX_ID_LEN`]
/// bytes, no `:` (it would split the username elsewhere) and no control characters.
fn check_id(id: &str) -> Result<(), Refusal> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Refusal::BadRequest(format!(
            "id must be 1..={MAX_ID_LEN} bytes"
        )));
    }
    if id.chars().any(|c| c == ':' || c.is_control()) {
        return Err(Refusal::BadRequest(
            "id must not contain ':' or control characters".to_owned(),
        ));
    }
    Ok(())
}

/// A random user part: 96 bits, URL-safe base64.
fn random_id() -> String {
    use base64::Engine;
    let bytes: [u8; 12] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter(keys: &[&str]) -> Minter {
        let mut config = Config::default();
        config.turn.secrets = vec!["s3cret".to_owned()];
        config.credentials_service.api_keys = keys.iter().map(|k| (*k).to_owned()).collect();
        Minter::new(Arc::new(config))
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn keys_are_checked() {
        let s = minter(&["key-one-0123456789", "key-two-0123456789"]);
        assert!(s.authorize(&bearer("key-two-0123456789")).is_ok());
        assert!(s.authorize(&bearer("key-two-012345678")).is_err());
        assert!(s.authorize(&bearer("")).is_err());
        assert!(s.authorize(&HeaderMap::new()).is_err());
    }

    #[test]
    fn ttl_and_id_rules() {
        let s = minter(&["key-one-0123456789"]);
        let m = s.mint(Ask::default(), 1_000).unwrap();
        assert_eq!(m.ttl, 86_400);
        assert_eq!(m.expires_at, 87_400);
        assert!(m.username.starts_with("87400:"));
        let ask = |ttl, id: &str| Ask {
            ttl,
            id: Some(id.to_owned()),
        };
        let m = s.mint(ask(Some(60), "alice"), 1_000).unwrap();
        assert_eq!(m.username, "1060:alice");
        assert_eq!(m.credential, mint(b"s3cret", "alice", 1_060).1);
        assert!(s.mint(ask(Some(0), "alice"), 0).is_err());
        assert!(s.mint(ask(Some(604_801), "alice"), 0).is_err());
        assert!(s.mint(ask(Some(604_800), "alice"), 0).is_ok());
        for bad in ["", "a:b", "a\nb", "a\u{7f}"] {
            assert!(s.mint(ask(None, bad), 0).is_err(), "{bad:?}");
        }
    }
}
