//! `turnpike ctl`: the admin API from the command line (see `crates/admin/openapi.yaml`).
//!
//! Where to connect: `--url`, else `http://` + `[admin] listen` of the configuration
//! (`-c`, or the embedded default; an unspecified listen address becomes loopback). The
//! token: `--token`, else the `TURNPIKE_ADMIN_TOKEN` environment variable, else
//! `[admin] token` or `token_file`. Output is a human table or summary; `--json` prints
//! the API's JSON as it came. Exit codes: 0 done, 1 the API refused (its error is
//! printed), 2 a usage, configuration or connection problem.

mod show;

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use turnpike_server::Config;

use crate::config::ConfigError;
use crate::credentials::parse_ttl;

/// The environment variable the admin token may come from.
pub(crate) const TOKEN_ENV: &str = "TURNPIKE_ADMIN_TOKEN";

/// Options of `turnpike ctl`.
#[derive(Debug, clap::Args)]
pub(crate) struct CtlArgs {
    /// The admin API's base URL (default: `http://` + `[admin] listen` of the
    /// configuration).
    #[arg(long, global = true)]
    url: Option<String>,
    /// The admin token (default: TURNPIKE_ADMIN_TOKEN, then `[admin] token` or
    /// `token_file` of the configuration).
    #[arg(long, global = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

/// What `turnpike ctl` does.
#[derive(Debug, clap::Subcommand)]
enum CtlCommand {
    /// Version, uptime, workers, allocations, drain and totals.
    Status,
    /// List allocations, all or those matching every filter given.
    Sessions {
        /// A USERNAME, or the user part of TURN REST usernames.
        #[arg(long)]
        user: Option<String>,
        /// A peer IP with a permission or channel.
        #[arg(long)]
        peer: Option<String>,
        /// The client's transport: udp, tcp or tls.
        #[arg(long)]
        transport: Option<String>,
    },
    /// End one allocation by its id, or every allocation of a user.
    Kill {
        /// The session id (from `sessions`).
        #[arg(conflicts_with = "user", required_unless_present = "user")]
        id: Option<String>,
        /// End every allocation of this user instead.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a user or username: its allocations end and it gets 401 from now on.
    Revoke {
        /// A user (every REST credential minted for it) or a USERNAME as sent.
        name: String,
        /// Unix time the revocation lapses.
        #[arg(long, conflicts_with = "for_")]
        until: Option<u64>,
        /// How long the revocation lasts: seconds, or a number with s, m, h or d.
        #[arg(long = "for", id = "for_", value_parser = parse_ttl)]
        for_: Option<u64>,
    },
    /// Lift a revocation.
    Unrevoke {
        /// The name revoked.
        name: String,
    },
    /// List the revocations in force.
    Revocations,
    /// Start draining (new allocations go to a sibling or get 508; the server stops
    /// when the last allocation ends or at the deadline).
    Drain {
        /// The deadline from now: seconds, or a number with s, m, h or d (default:
        /// `[drain] deadline_secs`).
        #[arg(long, value_parser = parse_ttl)]
        deadline: Option<u64>,
    },
    /// Read the configuration file again, as SIGHUP does.
    Reload,
    /// Set the log level (error, warn, info, debug, trace) until the next reload.
    LogLevel {
        /// The level.
        level: String,
    },
}

/// Why a command failed, and so the exit code.
#[derive(Debug)]
enum Failure {
    /// The API answered with an error (exit 1).
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's `error`, or the body.
        message: String,
    },
    /// Usage, configuration or connection (exit 2).
    Usage(String),
}

/// Runs `turnpike ctl`; `config` loads the configuration when a default is needed.
pub(crate) fn run(
    args: &CtlArgs,
    config: impl FnOnce() -> Result<Config, ConfigError>,
) -> ExitCode {
    match execute(args, config) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure::Api { status, message }) => {
            eprintln!("turnpike ctl: the admin API refused ({status}): {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("turnpike ctl: {message}");
            ExitCode::from(2)
        }
    }
}

/// Where and as whom to connect.
struct Target {
    url: String,
    token: String,
}

fn target(
    args: &CtlArgs,
    config: impl FnOnce() -> Result<Config, ConfigError>,
) -> Result<Target, Failure> {
    let env = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let mut token = args.token.clone().or(env);
    let mut url = args.url.clone();
    if url.is_none() || token.is_none() {
        let config = config().map_err(|e| Failure::Usage(e.to_string()))?;
        let mut listen = config.admin.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(if listen.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        url.get_or_insert_with(|| format!("http://{listen}"));
        if token.is_none() {
            let (configured, generated) = turnpike_admin::api::token(&config.admin)
                .map_err(|e| Failure::Usage(format!("[admin] token_file: {e}")))?;
            if generated.is_some() {
                return Err(Failure::Usage(format!(
                    "no admin token: pass --token, set {TOKEN_ENV}, or configure [admin] \
                     token or token_file (a server without one prints the token it generated)"
                )));
            }
            token = Some(configured);
        }
    }
    Ok(Target {
        url: url.unwrap_or_default().trim_end_matches('/').to_owned(),
        token: token.unwrap_or_default(),
    })
}

/// Percent-encodes a path segment or query value (RFC 3986 §2.3: unreserved stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A query string from the pairs whose value is set.
fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Calls the API; the JSON answer, or why not.
fn call(target: &Target, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("{}{path}", target.url);
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Authorization", format!("Bearer {}", target.token));
    let body = match body {
        Some(b) => {
            request = request.header("Content-Type", "application/json");
            b.to_string()
        }
        None => String::new(),
    };
    let request = request
        .body(body)
        .map_err(|e| Failure::Usage(format!("bad URL {url:?}: {e}")))?;
    let mut response = agent
        .run(request)
        .map_err(|e| Failure::Usage(format!("cannot reach the admin API at {url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| Failure::Usage(format!("reading the answer from {url}: {e}")))?;
    let value: Option<Value> = serde_json::from_str(&text).ok();
    if !(200..300).contains(&status) {
        let message = value
            .as_ref()
            .and_then(|v| v["error"].as_str())
            .map_or_else(|| text.trim().to_owned(), str::to_owned);
        return Err(Failure::Api { status, message });
    }
    value.ok_or_else(|| Failure::Usage(format!("{url} did not answer JSON: {text}")))
}

fn execute(
    args: &CtlArgs,
    config: impl FnOnce() -> Result<Config, ConfigError>,
) -> Result<String, Failure> {
    let target = target(args, config)?;
    let (method, path, body) = match &args.command {
        CtlCommand::Status => ("GET", "/v1/status".to_owned(), None),
        CtlCommand::Sessions {
            user,
            peer,
            transport,
        } => {
            let q = query(&[
                ("user", user.as_deref()),
                ("peer", peer.as_deref()),
                ("transport", transport.as_deref()),
            ]);
            ("GET", format!("/v1/sessions{q}"), None)
        }
        CtlCommand::Kill { id: Some(id), .. } => {
            ("DELETE", format!("/v1/sessions/{}", encode(id)), None)
        }
        CtlCommand::Kill { id: None, user } => {
            let q = query(&[("user", user.as_deref())]);
            ("DELETE", format!("/v1/sessions{q}"), None)
        }
        CtlCommand::Revoke { name, until, for_ } => {
            let until = until.or_else(|| for_.map(|secs| unix_now().saturating_add(secs)));
            let body = match until {
                Some(u) => json!({"name": name, "until": u}),
                None => json!({"name": name}),
            };
            ("POST", "/v1/revocations".to_owned(), Some(body))
        }
        CtlCommand::Unrevoke { name } => {
            ("DELETE", format!("/v1/revocations/{}", encode(name)), None)
        }
        CtlCommand::Revocations => ("GET", "/v1/revocations".to_owned(), None),
        CtlCommand::Drain { deadline } => {
            let body = deadline.map(|d| json!({"deadline_secs": d}));
            ("POST", "/v1/drain".to_owned(), body)
        }
        CtlCommand::Reload => ("POST", "/v1/reload".to_owned(), None),
        CtlCommand::LogLevel { level } => (
            "PUT",
            "/v1/log-level".to_owned(),
            Some(json!({"level": level})),
        ),
    };
    let answer = call(&target, method, &path, body)?;
    if args.json {
        return Ok(format!("{answer}\n"));
    }
    Ok(show::human(args.command_name(), &answer))
}

impl CtlArgs {
    /// The subcommand's name, for [`show::human`].
    fn command_name(&self) -> &'static str {
        match self.command {
            CtlCommand::Status => "status",
            CtlCommand::Sessions { .. } => "sessions",
            CtlCommand::Kill { .. } => "kill",
            CtlCommand::Revoke { .. } => "revoke",
            CtlCommand::Unrevoke { .. } => "unrevoke",
            CtlCommand::Revocations => "revocations",
            CtlCommand::Drain { .. } => "drain",
            CtlCommand::Reload => "reload",
            CtlCommand::LogLevel { .. } => "log-level",
        }
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_is_not_unreserved() {
        assert_eq!(encode("1700000000:alice"), "1700000000%3Aalice");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(
            query(&[("user", None), ("peer", Some("::1"))]),
            "?peer=%3A%3A1"
        );
        assert_eq!(query(&[("user", None)]), "");
    }
}
