//! Doctor's certificate checks on `[tls]`: the pair loads (the server's own loader),
//! the chain is in order, the leaf is valid now and for 14 more days, and it names
//! `[listen] public_name` (RFC 6125: a subjectAltName DNS name, `*.` matching one label,
//! or an IP address SAN; the common name is not looked at, as browsers do not).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use turnpike_server::Config;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use super::{Check, Verdict};

/// WARN when the certificate expires sooner than this.
const EXPIRY_WARNING_DAYS: i64 = 14;

/// The certificate checks; none without `[tls]`.
pub(super) fn checks(config: &Config) -> Vec<Check> {
    let Some(files) = &config.tls else {
        return vec![Check::ok("certificate", "no [tls]: TLS is off")];
    };
    if let Some(problem) = crate::host_check::tls_problem(config) {
        return vec![Check::bad(
            Verdict::Fail,
            "certificate",
            problem.reason,
            format!(
                "fix {} (PEM, and the key of the first certificate)",
                problem.key
            ),
        )];
    }
    let ders: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
    {
        Ok(d) => d,
        Err(e) => {
            return vec![Check::bad(
                Verdict::Fail,
                "certificate",
                format!("{}: {e}", files.cert.display()),
                "fix tls.cert",
            )];
        }
    };
    let mut parsed = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        match x509_parser::parse_x509_certificate(der.as_ref()) {
            Ok((_, cert)) => parsed.push(cert),
            Err(e) => {
                return vec![Check::bad(
                    Verdict::Fail,
                    "certificate",
                    format!(
                        "certificate {} of {} does not parse: {e}",
                        i + 1,
                        files.cert.display()
                    ),
                    "fix tls.cert",
                )];
            }
        }
    }
    let Some(leaf) = parsed.first() else {
        return vec![Check::bad(
            Verdict::Fail,
            "certificate",
            "no certificate",
            "fix tls.cert",
        )];
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    vec![
        chain(&parsed),
        expiry(leaf, now),
        name(leaf, &config.listen.public_name),
    ]
}

/// Each certificate issued by the next one.
fn chain(certs: &[X509Certificate<'_>]) -> Check {
    for (i, pair) in certs.windows(2).enumerate() {
        if let [cert, issuer] = pair {
            if cert.issuer().as_raw() != issuer.subject().as_raw() {
                return Check::bad(
                    Verdict::Fail,
                    "certificate chain",
                    format!(
                        "certificate {} is not issued by certificate {} (out of order, or a foreign one)",
                        i + 1,
                        i + 2
                    ),
                    "put the leaf first, then each issuer in turn (fullchain.pem)",
                );
            }
        }
    }
    match certs {
        [leaf] if leaf.issuer().as_raw() == leaf.subject().as_raw() => Check::ok(
            "certificate chain",
            "self-signed: clients must be told to trust it",
        ),
        [_] => Check::bad(
            Verdict::Warn,
            "certificate chain",
            "the leaf alone, without its intermediate certificates: clients that lack them cannot verify it",
            "point tls.cert at the full chain (fullchain.pem)",
        ),
        _ => Check::ok(
            "certificate chain",
            format!("{} certificates, in order", certs.len()),
        ),
    }
}

/// Valid now and for [`EXPIRY_WARNING_DAYS`] more.
fn expiry(leaf: &X509Certificate<'_>, now: i64) -> Check {
    let validity = leaf.validity();
    let (from, until) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let (from_text, until_text) = (
        validity.not_before.to_string(),
        validity.not_after.to_string(),
    );
    if until < now {
        return Check::bad(
            Verdict::Fail,
            "certificate expiry",
            format!("expired on {until_text}: TLS clients refuse it"),
            "renew the certificate (the server picks up new files by itself)",
        );
    }
    if from > now {
        return Check::bad(
            Verdict::Fail,
            "certificate expiry",
            format!(
                "not valid before {from_text}: the certificate or this machine's clock is wrong"
            ),
            "check the clock, or use a certificate valid now",
        );
    }
    let days = (until - now) / 86_400;
    if days < EXPIRY_WARNING_DAYS {
        return Check::bad(
            Verdict::Warn,
            "certificate expiry",
            format!("expires in {days} days ({until_text})"),
            "renew it now",
        );
    }
    Check::ok(
        "certificate expiry",
        format!("valid until {until_text} ({days} days)"),
    )
}

/// The leaf names `public_name`.
fn name(leaf: &X509Certificate<'_>, public_name: &str) -> Check {
    if public_name.is_empty() {
        return Check::ok("certificate name", "not checked: no [listen] public_name");
    }
    let mut names = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for general in &san.value.general_names {
            match general {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    ips.extend(ip);
                }
                _ => {}
            }
        }
    }
    let matches = match public_name.parse::<IpAddr>() {
        Ok(ip) => ips.contains(&ip),
        Err(_) => names.iter().any(|n| dns_matches(n, public_name)),
    };
    if matches {
        return Check::ok("certificate name", format!("names {public_name}"));
    }
    let mut shown: Vec<String> = names;
    shown.extend(ips.iter().map(ToString::to_string));
    Check::bad(
        Verdict::Fail,
        "certificate name",
        format!(
            "does not name {public_name} (subjectAltName: {})",
            if shown.is_empty() {
                "none".to_owned()
            } else {
                shown.join(", ")
            }
        ),
        format!("get a certificate for {public_name}, or fix [listen] public_name"),
    )
}

/// RFC 6125 §6.4: case-insensitive; a `*` as the whole left-most label matches one label.
fn dns_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.trim_end_matches('.'), name.trim_end_matches('.'));
    if let Some(rest) = pattern.strip_prefix("*.") {
        return name
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail.eq_ignore_ascii_case(rest));
    }
    pattern.eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label() {
        assert!(dns_matches("*.example.com", "turn.example.com"));
        assert!(dns_matches("TURN.example.com", "turn.EXAMPLE.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(!dns_matches("example.com", "turn.example.com"));
    }
}
