//! The browser self-test page: `GET /selftest` on the admin listener.
//!
//! An operator opens `http://127.0.0.1:5766/selftest` (over an SSH tunnel on a real
//! machine), pastes the admin token and sees, per TURN URL of this server, whether a
//! relay-only `RTCPeerConnection` gathered a relay candidate (and its `relayProtocol`) or
//! which `icecandidateerror` came back; a second button connects two relay-only peer
//! connections in the page to each other and reports the selected pair, RTT and bytes
//! moved. Username and credential fields override the minted credential, to show what a
//! wrong one does.
//!
//! How the secret stays out of the page:
//!
//! - the HTML ([`PAGE_HTML`]) and script ([`PAGE_JS`]) are static and carry no secret, so
//!   they are served without a token;
//! - the page gets its `iceServers` from `POST /v1/selftest/ice-servers`
//!   ([`ice_servers`]), which sits behind the admin token like the rest of `/v1`. The
//!   operator pastes the token into a field; the page keeps it in the tab's
//!   `sessionStorage` (gone when the tab closes, never in a URL or the history);
//! - the credential is a TURN REST one (draft-uberti-behave-turn-rest-00 §2.2) for the user
//!   [`SELFTEST_USER`], minted from the first `[turn] secrets` entry in force and valid
//!   [`SELFTEST_TTL_SECS`]. Without a secret (static users only) no credential is minted:
//!   the answer says so and the operator types a static user's name and password;
//!   static passwords never leave the server.
//!
//! The URLs are [`IceServers::new`]'s, the ones `turnpike credentials` prints, so they
//! follow the listeners, `[tls]` and `[listen] public_name`. The page and its script are
//! served with a Content-Security-Policy that allows only this origin's script and
//! `fetch`, and no framing.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use turnpike_proto::auth::rest::mint;
use turnpike_server::{Config, IceServers};

use crate::api::ApiState;

/// The page (`GET /selftest`): markup and style, no secret.
pub const PAGE_HTML: &str = include_str!("selftest.html");

/// The page's script (`GET /selftest.js`).
pub const PAGE_JS: &str = include_str!("selftest.js");

/// How long a self-test credential is valid, in seconds: a run takes seconds, and a
/// leaked one is soon useless.
pub const SELFTEST_TTL_SECS: u64 = 300;

/// The user part of the self-test's REST usernames (`<expiry>:selftest`): what its
/// allocations show in `ctl sessions`, and what `ctl revoke selftest` would stop.
pub const SELFTEST_USER: &str = "selftest";

/// The page's Content-Security-Policy: this origin's script and `fetch` only, inline
/// style (the page's `<style>`), no framing, no forms posted elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The answer of `POST /v1/selftest/ice-servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelftestServers {
    /// `{"iceServers": [...]}` as `RTCPeerConnection` takes it; the TURN entry carries
    /// the minted credential when `minted`, none otherwise.
    #[serde(flatten)]
    pub ice: IceServers,
    /// Whether a credential was minted (there is a `[turn] secrets` entry).
    pub minted: bool,
    /// Seconds the credential is valid (0 when none was minted).
    pub ttl: u64,
    /// Unix time the credential expires (absent when none was minted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The realm the server answers with (shown on the page).
    pub realm: String,
    /// What the operator must do when no credential was minted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Builds the self-test's `iceServers` for `config` at `now` (unix seconds): a REST
/// credential from the first secret, or none and a hint when there is no secret.
pub fn selftest_servers(config: &Config, now: u64) -> SelftestServers {
    let realm = config.turn.realm.clone();
    match config.turn.secrets.first() {
        Some(secret) => {
            let expires_at = now.saturating_add(SELFTEST_TTL_SECS);
            let (username, credential) = mint(secret.as_bytes(), SELFTEST_USER, expires_at);
            SelftestServers {
                ice: IceServers::new(config, &username, &credential),
                minted: true,
                ttl: SELFTEST_TTL_SECS,
                expires_at: Some(expires_at),
                realm,
                hint: None,
            }
        }
        None => {
            let mut ice = IceServers::new(config, "", "");
            for server in &mut ice.ice_servers {
                server.username = None;
                server.credential = None;
            }
            SelftestServers {
                ice,
                minted: false,
                ttl: 0,
                expires_at: None,
                realm,
                hint: Some(
                    "no [turn] secrets to mint with: type a static user's name and password \
                     in the username and credential fields"
                        .to_owned(),
                ),
            }
        }
    }
}

/// `POST /v1/selftest/ice-servers` (behind the admin token): [`selftest_servers`] with
/// the configuration in force.
pub async fn ice_servers(State(state): State<ApiState>) -> Json<SelftestServers> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let servers = selftest_servers(&state.control.config(), now);
    tracing::info!(
        minted = servers.minted,
        ttl = servers.ttl,
        "self-test credential handed out by the admin API"
    );
    Json(servers)
}

/// `GET /selftest`: the page.
pub async fn page() -> Response {
    asset(PAGE_HTML, "text/html; charset=utf-8")
}

/// `GET /selftest.js`: the page's script.
pub async fn script() -> Response {
    asset(PAGE_JS, "text/javascript; charset=utf-8")
}

/// A static asset with the page's security headers.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_proto::config::StaticUser;

    fn config() -> Config {
        let mut c = Config::default();
        c.listen.udp = vec!["127.0.0.1:3478".parse().unwrap()];
        c.listen.tcp = vec!["127.0.0.1:3478".parse().unwrap()];
        c.turn.realm = "example.org".to_owned();
        c
    }

    #[test]
    fn a_secret_mints_a_short_rest_credential_for_the_listeners() {
        let mut c = config();
        c.turn.secrets = vec!["first".to_owned(), "second".to_owned()];
        let s = selftest_servers(&c, 1_000);
        assert!(s.minted && s.hint.is_none());
        assert_eq!((s.ttl, s.expires_at), (300, Some(1_300)));
        let (user, pass) = mint(b"first", "selftest", 1_300);
        assert_eq!(s.ice, IceServers::new(&c, &user, &pass));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["iceServers"][1]["username"], "1300:selftest");
        assert_eq!(json["iceServers"][1]["credential"], pass.as_str());
        assert_eq!(json["realm"], "example.org");
        assert!(json.get("hint").is_none());
    }

    #[test]
    fn without_a_secret_no_credential_and_no_static_password_goes_out() {
        let mut c = config();
        c.turn.users = vec![StaticUser::with_password("alice", "alice-password")];
        let s = selftest_servers(&c, 1_000);
        assert!(!s.minted);
        assert_eq!((s.ttl, s.expires_at), (0, None));
        assert!(s.hint.is_some());
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("alice"), "{text}");
        for server in &s.ice.ice_servers {
            assert_eq!((&server.username, &server.credential), (&None, &None));
        }
        assert!(
            s.ice
                .urls()
                .any(|u| u == "turn:127.0.0.1:3478?transport=tcp"),
            "{text}"
        );
    }

    #[test]
    fn the_page_carries_no_secret_and_loads_nothing_from_elsewhere() {
        for asset in [PAGE_HTML, PAGE_JS] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
            assert!(!asset.contains("localStorage"), "the token stays per tab");
        }
        assert!(PAGE_HTML.contains("<script src=\"/selftest.js\""));
        assert!(PAGE_JS.contains("/v1/selftest/ice-servers"));
        assert!(PAGE_JS.contains("sessionStorage"));
    }
}
