//! Socket addresses as written in the configuration (`"203.0.113.7:3478"`,
//! `"[2001:db8::7]:3478"`), parsed with a reason an operator can act on: the value itself,
//! and whether the port is out of range, the brackets are missing or a host name was given
//! where only an address can go (an ALTERNATE-SERVER or a listener is an address, RFC 8489
//! §14.15).

use core::fmt;
use core::net::{IpAddr, SocketAddr};

/// Why a configured socket address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError {
    text: String,
    kind: AddrErrorKind,
}

/// What was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrErrorKind {
    /// An address without `:PORT`.
    NoPort,
    /// A port past 65535 or not a number.
    BadPort,
    /// An IPv6 address with a port but without brackets.
    Ipv6WithoutBrackets,
    /// A name, not an address.
    HostName,
}

impl AddrError {
    /// What was wrong.
    pub fn kind(&self) -> AddrErrorKind {
        self.kind
    }
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            AddrErrorKind::NoPort => "no port: write IP:PORT, e.g. 203.0.113.7:3478",
            AddrErrorKind::BadPort => "the port must be a number 0..=65535",
            AddrErrorKind::Ipv6WithoutBrackets => {
                "an IPv6 address with a port goes in brackets, e.g. [2001:db8::7]:3478"
            }
            AddrErrorKind::HostName => {
                "a host name is not an address: give the IP address (names are not resolved)"
            }
        };
        write!(f, "invalid socket address {:?}: {why}", self.text)
    }
}

impl std::error::Error for AddrError {}

/// Parses `IP:PORT` or `[IPv6]:PORT`.
///
/// # Errors
///
/// An [`AddrError`] naming the value and what is wrong with it.
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, AddrError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let fail = |kind| {
        Err(AddrError {
            text: text.to_owned(),
            kind,
        })
    };
    if text.parse::<IpAddr>().is_ok() {
        return match text.rsplit_once(':') {
            Some((ip, port)) if ip.parse::<IpAddr>().is_ok() && port.parse::<u16>().is_ok() => {
                fail(AddrErrorKind::Ipv6WithoutBrackets)
            }
            _ => fail(AddrErrorKind::NoPort),
        };
    }
    let Some((host, _port)) = text.rsplit_once(':') else {
        return fail(AddrErrorKind::HostName);
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.parse::<IpAddr>().is_ok() {
        fail(AddrErrorKind::BadPort)
    } else {
        fail(AddrErrorKind::HostName)
    }
}

/// `serde(deserialize_with)` helpers for socket addresses in the file.
#[cfg(feature = "serde")]
pub mod serde_addr {
    use core::net::SocketAddr;

    use serde::Deserialize;

    /// One address, parsed where it is written (so an error points at the element of a
    /// list, not at the list).
    struct Addr(SocketAddr);

    impl<'de> Deserialize<'de> for Addr {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            // The error is made inside the deserializer's call, so it is located at the
            // string itself.
            d.deserialize_str(AddrVisitor)
        }
    }

    struct AddrVisitor;

    impl serde::de::Visitor<'_> for AddrVisitor {
        type Value = Addr;

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a socket address, IP:PORT or [IPv6]:PORT")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Addr, E> {
            super::parse_socket_addr(text).map(Addr).map_err(E::custom)
        }
    }

    /// One address.
    ///
    /// # Errors
    ///
    /// Not a string, or not an address (see [`super::parse_socket_addr`]).
    pub fn one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        Addr::deserialize(d).map(|a| a.0)
    }

    /// A list of addresses.
    ///
    /// # Errors
    ///
    /// Not a list of strings, or one is not an address.
    pub fn list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
        Ok(Vec::<Addr>::deserialize(d)?
            .into_iter()
            .map(|a| a.0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mistake_gets_its_reason_and_the_value() {
        assert_eq!(
            parse_socket_addr("[::1]:3478").unwrap(),
            "[::1]:3478".parse().unwrap()
        );
        for (text, kind) in [
            ("1.2.3.4", AddrErrorKind::NoPort),
            ("2001:db8::1", AddrErrorKind::NoPort),
            ("0.0.0.0:99999", AddrErrorKind::BadPort),
            ("[2001:db8::1]:x", AddrErrorKind::BadPort),
            ("turn.example.com:3478", AddrErrorKind::HostName),
            ("localhost", AddrErrorKind::HostName),
        ] {
            let e = parse_socket_addr(text).unwrap_err();
            assert_eq!(e.kind(), kind, "{text}");
            assert!(e.to_string().contains(&format!("{text:?}")), "{e}");
        }
    }
}
