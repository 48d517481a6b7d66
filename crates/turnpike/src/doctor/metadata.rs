//! The cloud metadata service, when one answers: the instance's public IPv4 (to check
//! `external_ip` against) and the HTTP `Date:` of its answer (a reference clock).
//!
//! Tried in turn at one base URL (`http://169.254.169.254` unless `TURNPIKE_METADATA_URL`
//! says otherwise; GCP's `metadata.google.internal` is that address, and resolving the
//! name would ask a DNS server, so the address is used):
//!
//! - AWS IMDSv2: `PUT /latest/api/token` (`X-aws-ec2-metadata-token-ttl-seconds`), then
//!   `GET /latest/meta-data/public-ipv4` with `X-aws-ec2-metadata-token`;
//! - GCP: `GET /computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip`
//!   with `Metadata-Flavor: Google` (the answer must carry it too);
//! - Azure: `GET /metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress`
//!   `?api-version=2021-02-01&format=text` with `Metadata: true`.
//!
//! Everything shares one deadline (about a second); no proxy is used whatever the
//! environment says. When the first request cannot even connect, nothing else is tried:
//! there is no metadata service.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

/// The default base URL: the link-local address every major cloud serves metadata on.
pub(crate) const DEFAULT_URL: &str = "http://169.254.169.254";

/// What the metadata service said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// `aws`, `gcp` or `azure`.
    pub(crate) provider: &'static str,
    /// The instance's public IPv4, if it has one.
    pub(crate) public_ipv4: Option<Ipv4Addr>,
    /// The `Date:` of the answer.
    pub(crate) date: Option<SystemTime>,
}

/// The outcome of the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Not asked (`--no-metadata`).
    Skipped,
    /// Nothing answered: why.
    Absent(String),
    /// A provider answered.
    Found(Metadata),
}

/// One HTTP answer: status, body, `Date:`, and whether `Metadata-Flavor: Google` came back.
struct Answer {
    status: u16,
    body: String,
    date: Option<SystemTime>,
    google: bool,
}

/// Why a request got no HTTP answer.
#[derive(Debug)]
struct NoAnswer(String);

/// Probes the metadata service at `base` within `budget`.
pub(crate) fn probe(base: &str, budget: Duration) -> Probe {
    let deadline = Instant::now() + budget;
    let base = base.trim_end_matches('/');
    // AWS first: its token request also tells whether anything listens at all.
    let token = match request(
        deadline,
        "PUT",
        &format!("{base}/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    ) {
        Ok(a) => a,
        Err(NoAnswer(why)) => {
            return Probe::Absent(format!("no metadata service at {base}: {why}"));
        }
    };
    if token.status == 200 && !token.body.trim().is_empty() {
        let ip = request(
            deadline,
            "GET",
            &format!("{base}/latest/meta-data/public-ipv4"),
            &[("X-aws-ec2-metadata-token", token.body.trim())],
        );
        return found("aws", ip.ok(), token.date);
    }
    let gcp = request(
        deadline,
        "GET",
        &format!(
            "{base}/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip"
        ),
        &[("Metadata-Flavor", "Google")],
    );
    if let Ok(a) = gcp {
        if a.google {
            let date = a.date;
            return found("gcp", Some(a), date);
        }
    }
    let azure = request(
        deadline,
        "GET",
        &format!(
            "{base}/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress\
             ?api-version=2021-02-01&format=text"
        ),
        &[("Metadata", "true")],
    );
    match azure {
        Ok(a) if a.status == 200 => {
            let date = a.date;
            found("azure", Some(a), date)
        }
        Ok(a) => Probe::Absent(format!(
            "something answers at {base} (HTTP {} to IMDSv2, GCP and Azure requests) but it is no metadata service turnpike knows",
            a.status
        )),
        Err(NoAnswer(why)) => Probe::Absent(format!("no metadata service at {base}: {why}")),
    }
}

/// A provider's answer: the public IPv4 when the address request got a 200 with one.
fn found(provider: &'static str, ip: Option<Answer>, date: Option<SystemTime>) -> Probe {
    let public_ipv4 = ip
        .filter(|a| a.status == 200)
        .and_then(|a| a.body.trim().parse().ok());
    Probe::Found(Metadata {
        provider,
        public_ipv4,
        date,
    })
}

/// One request, bounded by `deadline`.
fn request(
    deadline: Instant,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, NoAnswer> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(NoAnswer("no answer within the time allowed".to_owned()));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(left))
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(())
        .map_err(|e| NoAnswer(format!("bad request: {e}")))?;
    let mut response = agent.run(request).map_err(|e| NoAnswer(e.to_string()))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let date = header("date").and_then(|d| httpdate::parse_http_date(&d).ok());
    let google = header("metadata-flavor").is_some_and(|v| v == "Google");
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    Ok(Answer {
        status,
        body,
        date,
        google,
    })
}
