//! `turnpike explain-auth`: why the server would accept or reject a username and password,
//! one line per check, in the order the server makes them
//! ([`turnpike_proto::auth::Credentials::authenticate`]):
//!
//! 1. the realm (informative: long-term credentials use the realm the server sends in its
//!    401, RFC 8489 §9.2.3, so a client-side realm only matters to clients that force one);
//! 2. a static user of that name (`[turn] users`, the last entry of a name wins, as in the
//!    server): the password, prepared with OpaqueString (RFC 8265), decides, and the REST
//!    secrets are not consulted; a user configured with its MD5 key (`key = "0x…"`) is
//!    checked against MD5(name ":" realm ":" password) and works with MD5 only (a client
//!    that picks SHA-256 is refused: that key needs the password);
//! 3. otherwise a REST username ([`parse_rest_username`]): which field order, the expiry
//!    against the clock (and what `strict_expiry` does with it), and which secret, if any,
//!    gives the password ([`rest_password`]).
//!
//! Secrets are never printed: a matching secret is named by its index and a fingerprint,
//! the first 8 characters of base64(HMAC-SHA1(secret, "turnpike secret fingerprint")),
//! which `printf %s 'turnpike secret fingerprint' | openssl dgst -binary -sha1 -hmac SECRET
//! | base64 | cut -c1-8` reproduces.
//!
//! Exit codes: 0 accepted, 1 rejected, 2 bad usage or configuration.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use turnpike_proto::auth::rest::{parse_rest_username, rest_password};
use turnpike_proto::{Md5Key, UserCredential};
use turnpike_server::TurnSection;
use turnpike_stun::LongTermKey;
use turnpike_stun::attr::PasswordAlgorithmId;

/// Options of `turnpike explain-auth`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// The USERNAME the client sends.
    #[arg(long)]
    username: String,
    /// The password (credential) the client uses.
    #[arg(long)]
    password: String,
    /// The realm the client is set to use, if it forces one.
    #[arg(long)]
    realm: Option<String>,
    /// The password algorithm the client picks (RFC 8489 PASSWORD-ALGORITHM); unknown if
    /// not given. It only matters for users configured with an MD5 key.
    #[arg(long, value_enum)]
    algorithm: Option<Algorithm>,
}

/// A password algorithm a client may pick (RFC 8489 §14.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Algorithm {
    /// MD5, also what RFC 5389 clients (no PASSWORD-ALGORITHM) use.
    Md5,
    /// SHA-256.
    Sha256,
}

/// The text HMAC'd with a secret to name it without showing it.
const FINGERPRINT_INPUT: &str = "turnpike secret fingerprint";

/// The checks made and their outcome.
#[derive(Debug)]
pub(crate) struct Explanation {
    /// One line per check: a mark (`ok`, `FAIL`, `WARN` for what concerns some clients
    /// only, `--` for a fact), then what was found.
    pub(crate) lines: Vec<String>,
    /// What the server would do.
    pub(crate) accepted: bool,
}

impl Explanation {
    fn fact(&mut self, text: String) {
        self.lines.push(format!("--   {text}"));
    }

    fn ok(&mut self, text: String) {
        self.lines.push(format!("ok   {text}"));
    }

    /// Something that concerns some clients only, not the verdict.
    fn warn(&mut self, text: String) {
        self.lines.push(format!("WARN {text}"));
    }

    fn fail(&mut self, text: String) {
        self.lines.push(format!("FAIL {text}"));
        self.accepted = false;
    }
}

/// A secret's fingerprint (see the module docs).
fn fingerprint(secret: &str) -> String {
    rest_password(secret.as_bytes(), FINGERPRINT_INPUT)
        .chars()
        .take(8)
        .collect()
}

/// Explains what `turn` makes of `username` and `password` at unix time `now`.
pub(crate) fn explain(
    turn: &TurnSection,
    username: &str,
    password: &str,
    client_realm: Option<&str>,
    algorithm: Option<Algorithm>,
    now: u64,
) -> Explanation {
    let mut out = Explanation {
        lines: Vec::new(),
        accepted: true,
    };
    out.fact(format!(
        "realm: the server uses {:?} ([turn] realm) and sends it in its 401; clients take it \
         from there, so a client-side realm setting does not matter (except for clients \
         that force one)",
        turn.realm
    ));
    if let Some(realm) = client_realm.filter(|r| *r != turn.realm) {
        out.warn(format!(
            "realm: --realm {realm:?} differs from the server's {:?}: a client that forces \
             it derives another key and is rejected; one that takes the realm from the 401 \
             is not affected",
            turn.realm
        ));
    }
    if let Some(i) = turn.users.iter().rposition(|u| u.name == username) {
        static_user(&mut out, turn, i, password, client_realm, algorithm);
        return out;
    }
    out.fact(format!(
        "static user: no [turn] users entry is named {username:?} ({} configured): the REST \
         secrets decide",
        turn.users.len()
    ));
    let Some(rest) = parse_rest_username(username) else {
        out.fail(format!(
            "REST form: {username:?} is not a REST username: expected \"<expiry>:<user>\" (or \
             \"<user>:<expiry>\"), the expiry a unix time in seconds of 10 or 11 digits \
             (1000000000..=99999999999)"
        ));
        return out;
    };
    let expiry_first = username
        .split_once(':')
        .is_some_and(|(_, after)| std::ptr::eq(after, rest.user));
    let form = if expiry_first {
        "<expiry>:<user>"
    } else {
        "<user>:<expiry>"
    };
    out.ok(format!(
        "REST form: \"{form}\": user {:?}, expiry {} (both orders are accepted)",
        rest.user, rest.expiry
    ));
    if rest.expiry < now {
        out.fail(format!(
            "expiry: expired {} s ago (at unix {}); new requests with it are refused{}",
            now - rest.expiry,
            rest.expiry,
            if turn.strict_expiry {
                ", and with strict_expiry = true allocations made with it ended then"
            } else {
                " (strict_expiry = false: allocations made before live out their lifetime)"
            }
        ));
    } else {
        out.ok(format!(
            "expiry: valid for {} s more (until unix {}); {}",
            rest.expiry - now,
            rest.expiry,
            if turn.strict_expiry {
                "strict_expiry = true: allocations made with it end at the expiry"
            } else {
                "strict_expiry = false: allocations made with it outlive it by up to one \
                 lifetime (refreshes after the expiry are refused)"
            }
        ));
    }
    rest_secret(&mut out, turn, username, password);
    out
}

/// The static user at `users[i]` decides.
fn static_user(
    out: &mut Explanation,
    turn: &TurnSection,
    i: usize,
    password: &str,
    client_realm: Option<&str>,
    algorithm: Option<Algorithm>,
) {
    let user = &turn.users[i];
    let configured = match &user.credential {
        UserCredential::Password(p) => p,
        UserCredential::Md5Key(key) => {
            keyed_user(out, turn, i, *key, password, client_realm, algorithm);
            out.fact(
                "REST secrets: not consulted, a static user of this name is checked first"
                    .to_owned(),
            );
            return;
        }
    };
    // The server derives the key from the OpaqueString-prepared password (RFC 8265 §4.2).
    let prepared = turnpike_stun::opaque_string(password);
    let configured = turnpike_stun::opaque_string(configured);
    match (prepared, configured) {
        (Ok(given), Ok(configured)) if given == configured => out.ok(format!(
            "static user: {:?} is [turn] users[{i}] and the password is its password",
            user.name
        )),
        (Err(_), _) => out.fail(format!(
            "static user: {:?} is [turn] users[{i}], but the password is not a valid \
             OpaqueString (RFC 8265: empty or with control characters)",
            user.name
        )),
        _ => out.fail(format!(
            "static user: {:?} is [turn] users[{i}], but the password is not its password",
            user.name
        )),
    }
    out.fact("REST secrets: not consulted, a static user of this name is checked first".to_owned());
}

/// The static user at `users[i]` is configured with its MD5 key: the password must give
/// that key under the server's realm (RFC 8489 §9.2.2), and only MD5 can be checked.
fn keyed_user(
    out: &mut Explanation,
    turn: &TurnSection,
    i: usize,
    key: Md5Key,
    password: &str,
    client_realm: Option<&str>,
    algorithm: Option<Algorithm>,
) {
    let name = &turn.users[i].name;
    let derive = |realm: &str| {
        LongTermKey::derive(PasswordAlgorithmId::MD5, name, realm, password)
            .ok()
            .is_some_and(|k| k.as_bytes() == key.0)
    };
    if derive(&turn.realm) {
        out.ok(format!(
            "static user: {name:?} is [turn] users[{i}], configured with its MD5 key, and \
             MD5(name:realm:password) with realm {:?} is that key",
            turn.realm
        ));
    } else if let Some(realm) = client_realm.filter(|r| *r != turn.realm && derive(r)) {
        out.fail(format!(
            "static user: {name:?} is [turn] users[{i}]: its MD5 key was made for realm \
             {realm:?}, but the server's realm is {:?}: the key never verifies (make it again \
             with the server's realm, or use the password)",
            turn.realm
        ));
        return;
    } else {
        out.fail(format!(
            "static user: {name:?} is [turn] users[{i}], configured with its MD5 key, but \
             MD5(name:realm:password) with realm {:?} is not that key (wrong password, or \
             a key made for another realm)",
            turn.realm
        ));
        return;
    }
    let why = "the server has only the MD5 key: the SHA-256 key (RFC 8489 §9.2.2) is \
               derived from the password, which it does not have";
    match algorithm {
        Some(Algorithm::Sha256) => out.fail(format!(
            "password algorithm: the client picks SHA-256 and is answered 401 \
             (md5_key_only): {why}; configure the user with its password to serve it"
        )),
        Some(Algorithm::Md5) => out.ok(
            "password algorithm: MD5 (or none sent, RFC 5389): checked with the key".to_owned(),
        ),
        None => out.warn(format!(
            "password algorithm: works for clients that pick MD5 or send no \
             PASSWORD-ALGORITHM (RFC 5389); a client that picks SHA-256 gets 401: {why}"
        )),
    }
}

/// Which secret, if any, gives `password` for `username`.
fn rest_secret(out: &mut Explanation, turn: &TurnSection, username: &str, password: &str) {
    if turn.secrets.is_empty() {
        let generated = if turn.users.is_empty() {
            " (with no users either, the server generates a secret at each start, which \
             this command cannot know)"
        } else {
            ""
        };
        out.fail(format!("secret: no [turn] secrets configured{generated}"));
        return;
    }
    let matched = turn
        .secrets
        .iter()
        .position(|s| rest_password(s.as_bytes(), username) == password);
    match matched {
        Some(i) => out.ok(format!(
            "secret: the password is base64(HMAC-SHA1(secret, username)) for [turn] \
             secrets[{i}] (fingerprint {})",
            fingerprint(&turn.secrets[i])
        )),
        None => out.fail(format!(
            "secret: the password is not base64(HMAC-SHA1(secret, username)) for any of the \
             {} [turn] secrets (fingerprints {})",
            turn.secrets.len(),
            turn.secrets
                .iter()
                .map(|s| fingerprint(s))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Runs the subcommand: prints the checks, exits 0 if accepted, 1 if rejected.
pub(crate) fn run(args: &ExplainArgs, config: &turnpike_server::Config, name: &str) -> ExitCode {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let explained = explain(
        &config.turn,
        &args.username,
        &args.password,
        args.realm.as_deref(),
        args.algorithm,
        now,
    );
    println!("checking against {name}");
    for line in &explained.lines {
        println!("{line}");
    }
    if explained.accepted {
        println!("accepted");
        ExitCode::SUCCESS
    } else {
        println!("rejected");
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_server::config::Config;

    fn turn() -> TurnSection {
        let mut c = Config::default();
        c.turn.secrets = vec!["one".into(), "two".into()];
        c.turn.users = vec![turnpike_proto::config::StaticUser::with_password(
            "alice",
            "wonderland",
        )];
        c.turn
    }

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn rest_field_order_and_secret_index() {
        let t = turn();
        let user_first = "bob:1700000100";
        let e = explain(
            &t,
            user_first,
            &rest_password(b"two", user_first),
            None,
            None,
            NOW,
        );
        assert!(e.accepted, "{:#?}", e.lines);
        let all = e.lines.join("\n");
        assert!(all.contains("\"<user>:<expiry>\""), "{all}");
        assert!(
            all.contains("secrets[1]") && all.contains("valid for 100 s"),
            "{all}"
        );
        assert!(!all.contains("\"two\""), "the secret is never shown");
        let expiry_first = "1700000100:1700000200";
        let e = explain(
            &t,
            expiry_first,
            &rest_password(b"one", expiry_first),
            None,
            None,
            NOW,
        );
        assert!(e.lines.join("\n").contains("\"<expiry>:<user>\""));
    }

    #[test]
    fn the_fingerprint_is_what_openssl_computes() {
        // printf %s 'turnpike secret fingerprint' | openssl dgst -binary -sha1 -hmac one | base64
        assert_eq!(
            fingerprint("one"),
            rest_password(b"one", FINGERPRINT_INPUT)[..8]
        );
        assert_ne!(fingerprint("one"), fingerprint("two"));
    }

    #[test]
    fn an_expired_credential_is_rejected_even_with_the_right_secret() {
        let t = turn();
        let name = "1699999990:bob";
        let e = explain(&t, name, &rest_password(b"one", name), None, None, NOW);
        assert!(!e.accepted);
        assert!(e.lines.join("\n").contains("expired 10 s ago"));
    }

    #[test]
    fn a_static_user_shadows_the_secrets() {
        let mut t = turn();
        assert!(explain(&t, "alice", "wonderland", None, None, NOW).accepted);
        assert!(!explain(&t, "alice", "wonderland ", None, None, NOW).accepted);
        t.users[0].name = "1700000100:bob".into();
        let rest = rest_password(b"one", "1700000100:bob");
        let e = explain(&t, "1700000100:bob", &rest, None, None, NOW);
        assert!(!e.accepted, "the static user's password decides");
        assert!(e.lines.join("\n").contains("not consulted"));
    }

    #[test]
    fn a_forced_realm_is_noted_without_changing_the_verdict() {
        let t = turn();
        let e = explain(&t, "alice", "wonderland", Some("elsewhere"), None, NOW);
        assert!(e.accepted);
        assert!(e.lines.iter().any(|l| l.starts_with("WARN realm")));
        let e = explain(&t, "alice", "wonderland", Some("turnpike"), None, NOW);
        assert!(e.lines.iter().all(|l| !l.starts_with("WARN")));
    }

    #[test]
    fn a_user_with_an_md5_key_works_with_md5_only() {
        let mut t = turn();
        // turnadmin -k -u ninefingers -r north.gov -p youhavetoberealistic
        let key: Md5Key = "0xbc807ee29df3c9ffa736523fb2c4e8ee".parse().unwrap();
        t.realm = "north.gov".into();
        t.users = vec![turnpike_proto::StaticUser::with_md5_key("ninefingers", key)];
        let pass = "youhavetoberealistic";
        let e = explain(&t, "ninefingers", pass, None, Some(Algorithm::Md5), NOW);
        assert!(e.accepted, "{:#?}", e.lines);
        let e = explain(&t, "ninefingers", pass, None, None, NOW);
        assert!(e.accepted, "{:#?}", e.lines);
        assert!(
            e.lines
                .iter()
                .any(|l| l.starts_with("WARN password algorithm"))
        );
        let e = explain(&t, "ninefingers", pass, None, Some(Algorithm::Sha256), NOW);
        assert!(!e.accepted);
        assert!(
            e.lines.join("\n").contains("only the MD5 key"),
            "{:#?}",
            e.lines
        );
        assert!(!explain(&t, "ninefingers", "wrong", None, None, NOW).accepted);
        // The key is for north.gov; a server with another realm cannot use it.
        t.realm = "south.gov".into();
        let e = explain(&t, "ninefingers", pass, Some("north.gov"), None, NOW);
        assert!(!e.accepted);
        assert!(
            e.lines.join("\n").contains("made for realm \"north.gov\""),
            "{:#?}",
            e.lines
        );
    }
}
