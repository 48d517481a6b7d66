//! `turnpike credentials`: mint a TURN REST credential (draft-uberti-behave-turn-rest) for
//! the app server that hands credentials to browsers, with the URLs to use it on.
//!
//! The shared secret comes from the first of: `--secret`, `--secret-file` (its first line,
//! trimmed), the `TURNPIKE_SECRET` environment variable, the configuration's first
//! `[turn] secrets` entry. An empty secret is refused rather than minting a credential
//! anyone could compute. The URLs come from [`turnpike_server::IceServers`], so they follow
//! the configuration's listeners, `[tls]` and `[listen] public_name`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use turnpike_server::{Config, IceServers};

/// The environment variable a secret may come from.
pub(crate) const SECRET_ENV: &str = "TURNPIKE_SECRET";

/// Options of `turnpike credentials`.
#[derive(Debug, clap::Args)]
pub(crate) struct CredentialsArgs {
    /// The shared secret (one of `[turn] secrets`). Default: --secret-file, then the
    /// TURNPIKE_SECRET environment variable, then the configuration's first secret.
    #[arg(long)]
    secret: Option<String>,
    /// A file whose first line is the shared secret.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// The user name to embed.
    #[arg(long)]
    user: String,
    /// How long the credential is valid: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    /// Print `{"iceServers": [...]}` as JSON, ready for `RTCPeerConnection`.
    #[arg(long)]
    json: bool,
    /// Host name or IP of the server in the URLs. Default: `[listen] public_name`, or a
    /// guess from the configuration (external_ip, listener IP, host name).
    #[arg(long)]
    host: Option<String>,
}

/// Parses a lifetime: seconds, or a number followed by `s`, `m`, `h` or `d`.
///
/// # Errors
///
/// Not a number, an unknown unit, zero, or more seconds than a `u64` holds.
pub(crate) fn parse_ttl(s: &str) -> Result<u64, String> {
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("unknown unit in {s:?}: use s, m, h or d")),
    };
    let secs = n
        .checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))?;
    if secs == 0 {
        return Err("ttl must be positive".into());
    }
    Ok(secs)
}

/// The secret, or why there is none (the message for stderr).
fn secret(args: &CredentialsArgs, config: &Config, config_name: &str) -> Result<String, String> {
    let (secret, source) = if let Some(s) = &args.secret {
        (s.clone(), "--secret".to_owned())
    } else if let Some(path) = &args.secret_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--secret-file {}: cannot read: {e}", path.display()))?;
        let first = text.lines().next().unwrap_or("").trim().to_owned();
        (first, format!("the first line of {}", path.display()))
    } else if let Some(s) = std::env::var_os(SECRET_ENV) {
        let s = s
            .into_string()
            .map_err(|_| format!("{SECRET_ENV} is not valid UTF-8"))?;
        (s, SECRET_ENV.to_owned())
    } else if let Some(s) = config.turn.secrets.first() {
        (s.clone(), format!("[turn] secrets[0] of {config_name}"))
    } else {
        return Err(format!(
            "no secret: none given with --secret or --secret-file, {SECRET_ENV} is not set, \
             and {config_name} has no [turn] secrets (a server running without one printed \
             the secret it generated: \"turn secret ...\")"
        ));
    };
    if secret.is_empty() {
        return Err(format!(
            "the secret from {source} is empty: a credential minted from it would be \
             anyone's to compute"
        ));
    }
    Ok(secret)
}

/// Runs the subcommand: 0 with the credential printed, 2 without a usable secret.
pub(crate) fn run(args: &CredentialsArgs, config: &Config, config_name: &str) -> ExitCode {
    let secret = match secret(args, config, config_name) {
        Ok(secret) => secret,
        Err(why) => {
            eprintln!("turnpike credentials: {why}");
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (username, password) =
        turnpike_proto::auth::rest::mint(secret.as_bytes(), &args.user, now + args.ttl);
    let ice = match &args.host {
        Some(host) => IceServers::for_host(config, host, &username, &password),
        None => IceServers::new(config, &username, &password),
    };
    if args.json {
        match serde_json::to_string(&ice) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("turnpike credentials: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        println!("username: {username}");
        println!("password: {password}");
        for url in ice.urls() {
            println!("url: {url}");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units_and_limits() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("2m"), Ok(120));
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert_eq!(parse_ttl("1d"), Ok(86_400));
        for bad in ["0", "0h", "", "h", "5y", "-1", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
        assert!(parse_ttl("999999999999999999d").is_err(), "overflow");
    }
}
