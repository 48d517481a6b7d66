//! Socket addresses as the kernel reads and writes them: [`RawAddr`] (a `sockaddr_in` or
//! `sockaddr_in6` built from a [`SocketAddr`], 28 bytes rather than `sockaddr_storage`'s 128)
//! and [`socket_addr`] (a [`SocketAddr`] from a `sockaddr_storage` the kernel filled).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A socket address in the kernel's layout, to name a destination in a send.
#[derive(Clone, Copy)]
pub struct RawAddr {
    inner: Inner,
    len: libc::socklen_t,
}

/// The storage of a [`RawAddr`]: which member is live is told by `len` (and by the family
/// field both members start with).
#[derive(Clone, Copy)]
#[repr(C)]
union Inner {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    /// An all-zero address of length 0 (names nothing), to be overwritten.
    pub(crate) const EMPTY: Self = Self {
        inner: Inner {
            v6: libc::sockaddr_in6 {
                sin6_family: 0,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                sin6_scope_id: 0,
            },
        },
        len: 0,
    };

    /// Pointer to the address, for `msg_name` or `sendto`'s address argument.
    #[inline]
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.inner).cast()
    }

    /// Bytes of the address that the kernel reads.
    #[inline]
    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// Whether this names no address (length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl From<SocketAddr> for RawAddr {
    #[inline]
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self {
                inner: Inner {
                    v4: libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: a.port().to_be(),
                        sin_addr: libc::in_addr {
                            s_addr: u32::from(*a.ip()).to_be(),
                        },
                        sin_zero: [0; 8],
                    },
                },
                len: size_of::<libc::sockaddr_in>() as libc::socklen_t,
            },
            SocketAddr::V6(a) => Self {
                inner: Inner {
                    v6: libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as libc::sa_family_t,
                        sin6_port: a.port().to_be(),
                        sin6_flowinfo: a.flowinfo(),
                        sin6_addr: libc::in6_addr {
                            s6_addr: a.ip().octets(),
                        },
                        sin6_scope_id: a.scope_id(),
                    },
                },
                len: size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            },
        }
    }
}

/// The address in a `sockaddr_storage` of which the kernel filled `len` bytes; `None` for
/// a family other than IPv4 and IPv6, or too short a length.
#[inline]
pub fn socket_addr(storage: &libc::sockaddr_storage, len: usize) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: sockaddr_storage is large and aligned enough for every sockaddr type,
            // the family says the kernel wrote a sockaddr_in, and all its fields are plain
            // integers.
            let sin = unsafe { (&raw const *storage).cast::<libc::sockaddr_in>().read() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { (&raw const *storage).cast::<libc::sockaddr_in6>().read() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// An all-zero `sockaddr_storage` (family `AF_UNSPEC`), for the kernel to fill.
pub(crate) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain integers; all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `RawAddr` read back as the kernel would give it is the same address.
    #[test]
    fn raw_addr_round_trips() {
        let addrs: [SocketAddr; 3] = [
            "192.0.2.7:3478".parse().unwrap(),
            "[2001:db8::1]:5349".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0, 3)),
        ];
        for addr in addrs {
            let raw = RawAddr::from(addr);
            let mut storage = zeroed_storage();
            let len = raw.len() as usize;
            // SAFETY: `raw` holds `len` initialised bytes (one whole sockaddr_in or _in6)
            // and `storage` has room for any sockaddr; the two do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    raw.as_ptr().cast::<u8>(),
                    (&raw mut storage).cast::<u8>(),
                    len,
                );
            }
            assert_eq!(socket_addr(&storage, len), Some(addr));
            assert_eq!(socket_addr(&storage, len - 1), None);
        }
        assert!(RawAddr::EMPTY.is_empty());
        assert_eq!(socket_addr(&zeroed_storage(), 128), None);
    }
}
