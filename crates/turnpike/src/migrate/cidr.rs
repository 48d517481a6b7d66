//! coturn's peer address ranges (`A-B`, or one address) as CIDR blocks, the form
//! `[peers]` takes: an arbitrary inclusive range becomes the fewest aligned blocks that
//! cover exactly it, and a range less other ranges (coturn lets `allowed-peer-ip` win over
//! `denied-peer-ip`; turnpike's `deny` wins over `allow`) stays exact too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An inclusive address range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    /// IPv6 (128-bit) or IPv4 (32-bit) addresses.
    pub(crate) v6: bool,
    /// First address, as a number.
    pub(crate) start: u128,
    /// Last address, as a number.
    pub(crate) end: u128,
}

fn number(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn address(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        // An IPv4 range never holds a number above u32::MAX (it is made from addresses).
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

/// Why a text is not a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRange(pub(crate) String);

impl std::fmt::Display for BadRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadRange {}

impl Range {
    /// Parses `A-B` (inclusive, one family, A <= B), one address, or a CIDR block.
    pub(crate) fn parse(text: &str) -> Result<Self, BadRange> {
        let text = text.trim();
        let ip = |s: &str| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| BadRange(format!("{:?} is not an IP address", s.trim())))
        };
        if let Some((a, b)) = text.split_once('-') {
            let ((v6, start), (v6b, end)) = (number(ip(a)?), number(ip(b)?));
            if v6 != v6b {
                return Err(BadRange(format!("{text:?} mixes IPv4 and IPv6")));
            }
            if start > end {
                return Err(BadRange(format!(
                    "{text:?}: the first address is above the last"
                )));
            }
            return Ok(Self { v6, start, end });
        }
        if let Some((a, len)) = text.split_once('/') {
            let (v6, n) = number(ip(a)?);
            let bits = if v6 { 128 } else { 32 };
            let len: u32 = len
                .parse()
                .ok()
                .filter(|l| *l <= bits)
                .ok_or_else(|| BadRange(format!("{text:?}: bad prefix length")))?;
            let host = if len == bits {
                0
            } else {
                (!0u128) >> (128 - bits + len)
            };
            return Ok(Self {
                v6,
                start: n & !host,
                end: n | host,
            });
        }
        let (v6, n) = number(ip(text)?);
        Ok(Self {
            v6,
            start: n,
            end: n,
        })
    }

    /// The fewest CIDR blocks that cover exactly this range, in address order.
    pub(crate) fn cidrs(self) -> Vec<String> {
        let bits: u32 = if self.v6 { 128 } else { 32 };
        let mut out = Vec::new();
        let mut start = self.start;
        loop {
            // The largest block aligned at `start` ...
            let mut size_bits = start.trailing_zeros().min(bits);
            // ... that does not pass `end`.
            while size_bits > 0 && block_end(start, size_bits) > self.end {
                size_bits -= 1;
            }
            out.push(format!("{}/{}", address(self.v6, start), bits - size_bits));
            let last = block_end(start, size_bits);
            if last >= self.end {
                return out;
            }
            start = last + 1;
        }
    }
}

/// The last address of the block of 2^size_bits addresses starting at `start`.
fn block_end(start: u128, size_bits: u32) -> u128 {
    if size_bits >= 128 {
        u128::MAX
    } else {
        start | ((1u128 << size_bits) - 1)
    }
}

/// `ranges` less every address of `holes` (same family only), as sorted ranges.
pub(crate) fn subtract(ranges: &[Range], holes: &[Range]) -> Vec<Range> {
    let mut out = Vec::new();
    for r in ranges {
        let mut pieces = vec![*r];
        for h in holes.iter().filter(|h| h.v6 == r.v6) {
            pieces = pieces
                .into_iter()
                .flat_map(|p| {
                    let mut left = Vec::new();
                    if h.end < p.start || h.start > p.end {
                        left.push(p);
                        return left;
                    }
                    if h.start > p.start {
                        left.push(Range {
                            end: h.start - 1,
                            ..p
                        });
                    }
                    if h.end < p.end {
                        left.push(Range {
                            start: h.end + 1,
                            ..p
                        });
                    }
                    left
                })
                .collect();
        }
        out.extend(pieces);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(text: &str) -> Vec<String> {
        Range::parse(text).unwrap().cidrs()
    }

    #[test]
    fn coturn_sample_range_is_one_block() {
        // 83.166.64.0-83.166.95.255 is exactly 83.166.64.0/19.
        assert_eq!(cidrs("83.166.64.0-83.166.95.255"), ["83.166.64.0/19"]);
    }

    #[test]
    fn unaligned_ranges_split_minimally() {
        assert_eq!(
            cidrs("10.0.0.1-10.0.0.10"),
            [
                "10.0.0.1/32",
                "10.0.0.2/31",
                "10.0.0.4/30",
                "10.0.0.8/31",
                "10.0.0.10/32"
            ]
        );
        assert_eq!(
            cidrs("192.168.0.255-192.168.2.0"),
            ["192.168.0.255/32", "192.168.1.0/24", "192.168.2.0/32"]
        );
        assert_eq!(cidrs("0.0.0.0-255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            cidrs("255.255.255.254-255.255.255.255"),
            ["255.255.255.254/31"]
        );
        assert_eq!(
            cidrs("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ["::/0"]
        );
        assert_eq!(
            cidrs("2001:db8::-2001:db8::2"),
            ["2001:db8::/127", "2001:db8::2/128"]
        );
        assert_eq!(cidrs("203.0.113.7"), ["203.0.113.7/32"]);
        assert_eq!(cidrs("2001:db8::1"), ["2001:db8::1/128"]);
        assert_eq!(cidrs("10.1.2.3/8"), ["10.0.0.0/8"]);
    }

    /// Every split covers exactly its range: blocks are adjacent, in order, and each is
    /// aligned; and no two neighbours could merge (minimal).
    #[test]
    fn splits_are_exact_and_minimal() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let a = (seed >> 32) as u32;
            let b = a.saturating_add((seed as u32) >> (seed % 31));
            let r = Range {
                v6: false,
                start: u128::from(a),
                end: u128::from(b),
            };
            let blocks: Vec<(u128, u32)> = r
                .cidrs()
                .iter()
                .map(|c| {
                    let (ip, len) = c.split_once('/').unwrap();
                    (number(ip.parse().unwrap()).1, len.parse().unwrap())
                })
                .collect();
            let mut next = r.start;
            for &(start, len) in &blocks {
                assert_eq!(start, next, "{r:?}");
                let size_bits = 32 - len;
                assert!(start.trailing_zeros().min(32) >= size_bits, "aligned");
                next = block_end(start, size_bits) + 1;
            }
            assert_eq!(next, r.end + 1, "{r:?}");
            for w in blocks.windows(2) {
                let mergeable = w[0].1 == w[1].1
                    && w[0].1 > 0
                    && (w[0].0 >> (32 - w[0].1 + 1)) == (w[1].0 >> (32 - w[1].1 + 1));
                assert!(!mergeable, "{r:?}: {blocks:?} not minimal");
            }
        }
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in [
            "10.0.0.9-10.0.0.1",
            "10.0.0.1-::1",
            "nope",
            "10.0.0.0/33",
            "1.2.3.4-",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_holes_are_cut_out_of_denied_ranges() {
        let deny = [Range::parse("83.166.64.0-83.166.95.255").unwrap()];
        let allow = [Range::parse("83.166.68.45").unwrap()];
        let left = subtract(&deny, &allow);
        let all: Vec<String> = left.into_iter().flat_map(Range::cidrs).collect();
        assert!(!all.iter().any(|c| c == "83.166.68.45/32"));
        assert_eq!(all.first().map(String::as_str), Some("83.166.64.0/22"));
        assert!(all.contains(&"83.166.68.44/32".to_owned()));
        assert!(all.contains(&"83.166.68.46/31".to_owned()));
        assert!(all.contains(&"83.166.80.0/20".to_owned()));
        // Other families are untouched; a hole covering everything leaves nothing.
        let v6 = [Range::parse("2001:db8::/32").unwrap()];
        assert_eq!(subtract(&v6, &allow), v6);
        assert!(subtract(&allow, &deny).is_empty());
    }
}
