//! Byte-exact STUN test vectors with their documented expectations.
//!
//! Sources, transcribed from the RFC text (the hex groups below are laid out four
//! bytes per line with the RFC's own annotations, exactly as the RFCs print them):
//!
//! * RFC 5769, "Test Vectors for Session Traversal Utilities for NAT (STUN)",
//!   Section 2.1 to 2.4.
//! * RFC 8489, "Session Traversal Utilities for NAT (STUN)", Appendix B.1, both as
//!   published and as corrected by the verified RFC Editor Errata ID 6268.
//!
//! Every vector was cross-checked against independent copies (coturn's
//! `src/apps/rfc5769/rfc5769check.c`, pion/stun's `rfc5769_test.go`, the
//! rfc-editor.org text of Errata ID 6268) and re-verified from first principles
//! with a separate script: header length field, FINGERPRINT (CRC-32 of all bytes
//! before the FINGERPRINT attribute, XOR 0x5354554e), MESSAGE-INTEGRITY
//! (HMAC-SHA1) and MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256), where the HMAC input is
//! every byte before the integrity attribute with the header length field set to
//! end at the end of that integrity attribute (so a following FINGERPRINT is not
//! counted). The one exception, the published RFC 8489 B.1 vector, is documented
//! at [`RFC8489_B1_REQUEST_PUBLISHED`].
//!
//! Padding note: RFC 5769 pads with spaces (0x20) in several places (USERNAME in
//! Section 2.1, SOFTWARE in Sections 2.2 and 2.3) and with zeros elsewhere.
//! RFC 5389 Section 15 allowed any padding value; RFC 8489 Section 14 says it is
//! sent as zero and ignored by the receiver. Either way a decoder must not
//! include padding in the value and must not reject non-zero padding.
#![allow(dead_code)]
// Included from integration tests as `mod common;`, where nothing here can be
// reachable from a public API.
#![allow(unreachable_pub)]

use std::net::{Ipv4Addr, Ipv6Addr};

// ---------------------------------------------------------------------------
// Attribute type codes used in the lists below (RFC 8489 Section 18.3, RFC 8445
// Section 16.1 for PRIORITY and ICE-CONTROLLED).
// ---------------------------------------------------------------------------

/// USERNAME (0x0006), RFC 8489 Section 14.3.
pub const ATTR_USERNAME: u16 = 0x0006;
/// MESSAGE-INTEGRITY (0x0008), RFC 8489 Section 14.5.
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// REALM (0x0014), RFC 8489 Section 14.9.
pub const ATTR_REALM: u16 = 0x0014;
/// NONCE (0x0015), RFC 8489 Section 14.10.
pub const ATTR_NONCE: u16 = 0x0015;
/// MESSAGE-INTEGRITY-SHA256 (0x001C), RFC 8489 Section 14.6.
pub const ATTR_MESSAGE_INTEGRITY_SHA256: u16 = 0x001c;
/// PASSWORD-ALGORITHM (0x001D), RFC 8489 Section 14.12.
pub const ATTR_PASSWORD_ALGORITHM: u16 = 0x001d;
/// USERHASH (0x001E), RFC 8489 Section 14.4.
pub const ATTR_USERHASH: u16 = 0x001e;
/// XOR-MAPPED-ADDRESS (0x0020), RFC 8489 Section 14.2.
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// PRIORITY (0x0024), RFC 8445 Section 7.1.1.
pub const ATTR_PRIORITY: u16 = 0x0024;
/// SOFTWARE (0x8022), RFC 8489 Section 14.14.
pub const ATTR_SOFTWARE: u16 = 0x8022;
/// FINGERPRINT (0x8028), RFC 8489 Section 14.7.
pub const ATTR_FINGERPRINT: u16 = 0x8028;
/// ICE-CONTROLLED (0x8029), RFC 8445 Section 7.1.3.
pub const ATTR_ICE_CONTROLLED: u16 = 0x8029;

/// The value every FINGERPRINT CRC-32 is XORed with ("STUN"), RFC 8489 Section 14.7.
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;

// ---------------------------------------------------------------------------
// RFC 5769 Section 2.1: Sample Request (short-term credential)
// ---------------------------------------------------------------------------

/// RFC 5769 Section 2.1 "Sample Request": a Binding request with SOFTWARE,
/// PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY and FINGERPRINT.
/// 108 bytes; header length field 0x0058 (88) = 108 - 20.
///
/// The USERNAME "evtj:h6vY" (9 bytes) is padded with three spaces (0x20), not zeros.
/// MESSAGE-INTEGRITY verifies with the short-term key [`RFC5769_REQUEST_PASSWORD`]
/// over bytes `0..76` with the length field set to
/// [`RFC5769_REQUEST_MESSAGE_INTEGRITY_LENGTH_FIELD`]; FINGERPRINT is the CRC-32 of
/// bytes `0..100` (length field as in the packet) XOR 0x5354554e.
#[rustfmt::skip]
pub const RFC5769_REQUEST: &[u8] = &[
    0x00, 0x01, 0x00, 0x58, // Request type and message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01, // }
    0xbc, 0x34, 0xd6, 0x86, // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae, // }
    0x80, 0x22, 0x00, 0x10, // SOFTWARE attribute header
    0x53, 0x54, 0x55, 0x4e, // }
    0x20, 0x74, 0x65, 0x73, // }  User-agent...
    0x74, 0x20, 0x63, 0x6c, // }  ...name
    0x69, 0x65, 0x6e, 0x74, // }
    0x00, 0x24, 0x00, 0x04, // PRIORITY attribute header
    0x6e, 0x00, 0x01, 0xff, // ICE priority value
    0x80, 0x29, 0x00, 0x08, // ICE-CONTROLLED attribute header
    0x93, 0x2f, 0xf9, 0xb1, // }  Pseudo-random tie breaker...
    0x51, 0x26, 0x3b, 0x36, // }   ...for ICE control
    0x00, 0x06, 0x00, 0x09, // USERNAME attribute header
    0x65, 0x76, 0x74, 0x6a, // }
    0x3a, 0x68, 0x36, 0x76, // }  Username (9 bytes) and padding (3 bytes)
    0x59, 0x20, 0x20, 0x20, // }
    0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY attribute header
    0x9a, 0xea, 0xa7, 0x0c, // }
    0xbf, 0xd8, 0xcb, 0x56, // }
    0x78, 0x1e, 0xf2, 0xb5, // }  HMAC-SHA1 fingerprint
    0xb2, 0xd3, 0xf2, 0x49, // }
    0xc1, 0xb5, 0x71, 0xa2, // }
    0x80, 0x28, 0x00, 0x04, // FINGERPRINT attribute header
    0xe5, 0x7a, 0x3b, 0xcf, // CRC32 fingerprint
];

/// RFC 5769 Section 2.1: transaction ID of the Sample Request.
#[rustfmt::skip]
pub const RFC5769_REQUEST_TRANSACTION_ID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01,
    0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae,
];

/// RFC 5769 Section 2 (used by Sections 2.1, 2.2 and 2.3): the short-term
/// password "VOkJxbRl1RmTxUk/WvJxBt". The MESSAGE-INTEGRITY key is these bytes as-is.
pub const RFC5769_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// RFC 5769 Section 2.1: password of the Sample Request (short-term credential;
/// the HMAC-SHA1 key is the password's bytes).
pub const RFC5769_REQUEST_PASSWORD: &str = RFC5769_PASSWORD;

/// RFC 5769 Section 2.1: USERNAME of the Sample Request (9 bytes; on the wire it
/// is followed by 3 padding bytes 0x20 that are not part of the value).
pub const RFC5769_REQUEST_USERNAME: &str = "evtj:h6vY";

/// RFC 5769 Section 2.1: SOFTWARE of the Sample Request (16 bytes, no padding).
pub const RFC5769_REQUEST_SOFTWARE: &str = "STUN test client";

/// RFC 5769 Section 2.1: PRIORITY value (ICE priority) 0x6e0001ff.
pub const RFC5769_REQUEST_PRIORITY: u32 = 0x6e00_01ff;

/// RFC 5769 Section 2.1: ICE-CONTROLLED tie-breaker 0x932ff9b151263b36.
pub const RFC5769_REQUEST_ICE_CONTROLLED: u64 = 0x932f_f9b1_5126_3b36;

/// RFC 5769 Section 2.1: attributes of the Sample Request in wire order as
/// `(type, name, value length)`; value lengths exclude padding.
pub const RFC5769_REQUEST_ATTRIBUTES: &[(u16, &str, u16)] = &[
    (ATTR_SOFTWARE, "SOFTWARE", 16),
    (ATTR_PRIORITY, "PRIORITY", 4),
    (ATTR_ICE_CONTROLLED, "ICE-CONTROLLED", 8),
    (ATTR_USERNAME, "USERNAME", 9),
    (ATTR_MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY", 20),
    (ATTR_FINGERPRINT, "FINGERPRINT", 4),
];

/// RFC 5769 Section 2.1: byte offset of the MESSAGE-INTEGRITY attribute header.
pub const RFC5769_REQUEST_MESSAGE_INTEGRITY_OFFSET: usize = 76;

/// RFC 5769 Section 2.1: header length field used in the HMAC-SHA1 input
/// (RFC 8489 Section 14.5): it ends at the end of MESSAGE-INTEGRITY, so it
/// excludes the 8-byte FINGERPRINT: 76 + 24 - 20 = 80 (0x0050), not 0x0058.
pub const RFC5769_REQUEST_MESSAGE_INTEGRITY_LENGTH_FIELD: u16 = 0x0050;

/// RFC 5769 Section 2.1: the MESSAGE-INTEGRITY (HMAC-SHA1) value.
#[rustfmt::skip]
pub const RFC5769_REQUEST_MESSAGE_INTEGRITY: [u8; 20] = [
    0x9a, 0xea, 0xa7, 0x0c,
    0xbf, 0xd8, 0xcb, 0x56,
    0x78, 0x1e, 0xf2, 0xb5,
    0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2,
];

/// RFC 5769 Section 2.1: byte offset of the FINGERPRINT attribute header.
pub const RFC5769_REQUEST_FINGERPRINT_OFFSET: usize = 100;

/// RFC 5769 Section 2.1: the FINGERPRINT value (CRC-32 of bytes `0..100` XOR 0x5354554e).
pub const RFC5769_REQUEST_FINGERPRINT: u32 = 0xe57a_3bcf;

// ---------------------------------------------------------------------------
// RFC 5769 Section 2.2: Sample IPv4 Response
// ---------------------------------------------------------------------------

/// RFC 5769 Section 2.2 "Sample IPv4 Response": a Binding success response with
/// SOFTWARE, XOR-MAPPED-ADDRESS (192.0.2.1 port 32853), MESSAGE-INTEGRITY and
/// FINGERPRINT. 80 bytes; header length field 0x003c (60) = 80 - 20.
///
/// The SOFTWARE value is the 11 bytes "test vector"; the 12th byte (0x20, a
/// space) is padding and is not part of the value. MESSAGE-INTEGRITY verifies
/// with the short-term key [`RFC5769_IPV4_RESPONSE_PASSWORD`] over bytes `0..48`
/// with the length field set to [`RFC5769_IPV4_RESPONSE_MESSAGE_INTEGRITY_LENGTH_FIELD`].
#[rustfmt::skip]
pub const RFC5769_IPV4_RESPONSE: &[u8] = &[
    0x01, 0x01, 0x00, 0x3c, // Response type and message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01, // }
    0xbc, 0x34, 0xd6, 0x86, // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae, // }
    0x80, 0x22, 0x00, 0x0b, // SOFTWARE attribute header
    0x74, 0x65, 0x73, 0x74, // }
    0x20, 0x76, 0x65, 0x63, // }  UTF-8 server name
    0x74, 0x6f, 0x72, 0x20, // }
    0x00, 0x20, 0x00, 0x08, // XOR-MAPPED-ADDRESS attribute header
    0x00, 0x01, 0xa1, 0x47, // Address family (IPv4) and xor'd mapped port number
    0xe1, 0x12, 0xa6, 0x43, // Xor'd mapped IPv4 address
    0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY attribute header
    0x2b, 0x91, 0xf5, 0x99, // }
    0xfd, 0x9e, 0x90, 0xc3, // }
    0x8c, 0x74, 0x89, 0xf9, // }  HMAC-SHA1 fingerprint
    0x2a, 0xf9, 0xba, 0x53, // }
    0xf0, 0x6b, 0xe7, 0xd7, // }
    0x80, 0x28, 0x00, 0x04, // FINGERPRINT attribute header
    0xc0, 0x7d, 0x4c, 0x96, // CRC32 fingerprint
];

/// RFC 5769 Section 2.2: transaction ID (the same as Section 2.1's).
pub const RFC5769_IPV4_RESPONSE_TRANSACTION_ID: [u8; 12] = RFC5769_REQUEST_TRANSACTION_ID;

/// RFC 5769 Section 2.2: password (short-term; the key is the password's bytes).
pub const RFC5769_IPV4_RESPONSE_PASSWORD: &str = RFC5769_PASSWORD;

/// RFC 5769 Sections 2.2 and 2.3: SOFTWARE value "test vector" (11 bytes; the RFC
/// says `Software name: "test vector" (without quotes)`). The trailing space seen
/// on the wire is the padding byte, see [`RFC5769_RESPONSE_SOFTWARE_PADDING`].
pub const RFC5769_RESPONSE_SOFTWARE: &str = "test vector";

/// RFC 5769 Sections 2.2 and 2.3: the single SOFTWARE padding byte is 0x20 (a
/// space), not 0x00. Receivers ignore padding (RFC 8489 Section 14).
pub const RFC5769_RESPONSE_SOFTWARE_PADDING: u8 = 0x20;

/// RFC 5769 Section 2.2: SOFTWARE of the IPv4 response, "test vector".
pub const RFC5769_IPV4_RESPONSE_SOFTWARE: &str = RFC5769_RESPONSE_SOFTWARE;

/// RFC 5769 Section 2.2: the decoded XOR-MAPPED-ADDRESS IP, 192.0.2.1.
pub const RFC5769_IPV4_RESPONSE_MAPPED_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// RFC 5769 Section 2.2: the decoded XOR-MAPPED-ADDRESS port, 32853 (0x8055;
/// on the wire 0xa147 = 0x8055 XOR 0x2112).
pub const RFC5769_IPV4_RESPONSE_MAPPED_PORT: u16 = 32853;

/// RFC 5769 Section 2.2: the decoded XOR-MAPPED-ADDRESS as a socket address string.
pub const RFC5769_IPV4_RESPONSE_MAPPED_ADDRESS: &str = "192.0.2.1:32853";

/// RFC 5769 Section 2.2: attributes in wire order as `(type, name, value length)`.
pub const RFC5769_IPV4_RESPONSE_ATTRIBUTES: &[(u16, &str, u16)] = &[
    (ATTR_SOFTWARE, "SOFTWARE", 11),
    (ATTR_XOR_MAPPED_ADDRESS, "XOR-MAPPED-ADDRESS", 8),
    (ATTR_MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY", 20),
    (ATTR_FINGERPRINT, "FINGERPRINT", 4),
];

/// RFC 5769 Section 2.2: byte offset of the MESSAGE-INTEGRITY attribute header.
pub const RFC5769_IPV4_RESPONSE_MESSAGE_INTEGRITY_OFFSET: usize = 48;

/// RFC 5769 Section 2.2: header length field used in the HMAC-SHA1 input:
/// 48 + 24 - 20 = 52 (0x0034), excluding the trailing FINGERPRINT.
pub const RFC5769_IPV4_RESPONSE_MESSAGE_INTEGRITY_LENGTH_FIELD: u16 = 0x0034;

/// RFC 5769 Section 2.2: the MESSAGE-INTEGRITY (HMAC-SHA1) value.
#[rustfmt::skip]
pub const RFC5769_IPV4_RESPONSE_MESSAGE_INTEGRITY: [u8; 20] = [
    0x2b, 0x91, 0xf5, 0x99,
    0xfd, 0x9e, 0x90, 0xc3,
    0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53,
    0xf0, 0x6b, 0xe7, 0xd7,
];

/// RFC 5769 Section 2.2: byte offset of the FINGERPRINT attribute header.
pub const RFC5769_IPV4_RESPONSE_FINGERPRINT_OFFSET: usize = 72;

/// RFC 5769 Section 2.2: the FINGERPRINT value (CRC-32 of bytes `0..72` XOR 0x5354554e).
pub const RFC5769_IPV4_RESPONSE_FINGERPRINT: u32 = 0xc07d_4c96;

// ---------------------------------------------------------------------------
// RFC 5769 Section 2.3: Sample IPv6 Response
// ---------------------------------------------------------------------------

/// RFC 5769 Section 2.3 "Sample IPv6 Response": a Binding success response with
/// SOFTWARE, XOR-MAPPED-ADDRESS ([2001:db8:1234:5678:11:2233:4455:6677] port
/// 32853), MESSAGE-INTEGRITY and FINGERPRINT. 92 bytes; header length field
/// 0x0048 (72) = 92 - 20.
///
/// The IPv6 address is XORed with the magic cookie followed by the transaction
/// ID. SOFTWARE is "test vector" plus one 0x20 padding byte, as in Section 2.2.
/// MESSAGE-INTEGRITY verifies with the short-term key
/// [`RFC5769_IPV6_RESPONSE_PASSWORD`] over bytes `0..60` with the length field set
/// to [`RFC5769_IPV6_RESPONSE_MESSAGE_INTEGRITY_LENGTH_FIELD`].
#[rustfmt::skip]
pub const RFC5769_IPV6_RESPONSE: &[u8] = &[
    0x01, 0x01, 0x00, 0x48, // Response type and message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01, // }
    0xbc, 0x34, 0xd6, 0x86, // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae, // }
    0x80, 0x22, 0x00, 0x0b, // SOFTWARE attribute header
    0x74, 0x65, 0x73, 0x74, // }
    0x20, 0x76, 0x65, 0x63, // }  UTF-8 server name
    0x74, 0x6f, 0x72, 0x20, // }
    0x00, 0x20, 0x00, 0x14, // XOR-MAPPED-ADDRESS attribute header
    0x00, 0x02, 0xa1, 0x47, // Address family (IPv6) and xor'd mapped port number
    0x01, 0x13, 0xa9, 0xfa, // }
    0xa5, 0xd3, 0xf1, 0x79, // }  Xor'd mapped IPv6 address
    0xbc, 0x25, 0xf4, 0xb5, // }
    0xbe, 0xd2, 0xb9, 0xd9, // }
    0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY attribute header
    0xa3, 0x82, 0x95, 0x4e, // }
    0x4b, 0xe6, 0x7b, 0xf1, // }
    0x17, 0x84, 0xc9, 0x7c, // }  HMAC-SHA1 fingerprint
    0x82, 0x92, 0xc2, 0x75, // }
    0xbf, 0xe3, 0xed, 0x41, // }
    0x80, 0x28, 0x00, 0x04, // FINGERPRINT attribute header
    0xc8, 0xfb, 0x0b, 0x4c, // CRC32 fingerprint
];

/// RFC 5769 Section 2.3: transaction ID (the same as Section 2.1's).
pub const RFC5769_IPV6_RESPONSE_TRANSACTION_ID: [u8; 12] = RFC5769_REQUEST_TRANSACTION_ID;

/// RFC 5769 Section 2.3: password (short-term; the key is the password's bytes).
pub const RFC5769_IPV6_RESPONSE_PASSWORD: &str = RFC5769_PASSWORD;

/// RFC 5769 Section 2.3: SOFTWARE of the IPv6 response, "test vector".
pub const RFC5769_IPV6_RESPONSE_SOFTWARE: &str = RFC5769_RESPONSE_SOFTWARE;

/// RFC 5769 Section 2.3: the decoded XOR-MAPPED-ADDRESS IP,
/// 2001:db8:1234:5678:11:2233:4455:6677.
pub const RFC5769_IPV6_RESPONSE_MAPPED_IP: Ipv6Addr = Ipv6Addr::new(
    0x2001, 0x0db8, 0x1234, 0x5678, 0x0011, 0x2233, 0x4455, 0x6677,
);

/// RFC 5769 Section 2.3: the decoded XOR-MAPPED-ADDRESS port, 32853.
pub const RFC5769_IPV6_RESPONSE_MAPPED_PORT: u16 = 32853;

/// RFC 5769 Section 2.3: the decoded XOR-MAPPED-ADDRESS as a socket address string.
pub const RFC5769_IPV6_RESPONSE_MAPPED_ADDRESS: &str =
    "[2001:db8:1234:5678:11:2233:4455:6677]:32853";

/// RFC 5769 Section 2.3: attributes in wire order as `(type, name, value length)`.
pub const RFC5769_IPV6_RESPONSE_ATTRIBUTES: &[(u16, &str, u16)] = &[
    (ATTR_SOFTWARE, "SOFTWARE", 11),
    (ATTR_XOR_MAPPED_ADDRESS, "XOR-MAPPED-ADDRESS", 20),
    (ATTR_MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY", 20),
    (ATTR_FINGERPRINT, "FINGERPRINT", 4),
];

/// RFC 5769 Section 2.3: byte offset of the MESSAGE-INTEGRITY attribute header.
pub const RFC5769_IPV6_RESPONSE_MESSAGE_INTEGRITY_OFFSET: usize = 60;

/// RFC 5769 Section 2.3: header length field used in the HMAC-SHA1 input:
/// 60 + 24 - 20 = 64 (0x0040), excluding the trailing FINGERPRINT.
pub const RFC5769_IPV6_RESPONSE_MESSAGE_INTEGRITY_LENGTH_FIELD: u16 = 0x0040;

/// RFC 5769 Section 2.3: the MESSAGE-INTEGRITY (HMAC-SHA1) value.
#[rustfmt::skip]
pub const RFC5769_IPV6_RESPONSE_MESSAGE_INTEGRITY: [u8; 20] = [
    0xa3, 0x82, 0x95, 0x4e,
    0x4b, 0xe6, 0x7b, 0xf1,
    0x17, 0x84, 0xc9, 0x7c,
    0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41,
];

/// RFC 5769 Section 2.3: byte offset of the FINGERPRINT attribute header.
pub const RFC5769_IPV6_RESPONSE_FINGERPRINT_OFFSET: usize = 84;

/// RFC 5769 Section 2.3: the FINGERPRINT value (CRC-32 of bytes `0..84` XOR 0x5354554e).
pub const RFC5769_IPV6_RESPONSE_FINGERPRINT: u32 = 0xc8fb_0b4c;

// ---------------------------------------------------------------------------
// RFC 5769 Section 2.4: Sample Request with Long-Term Authentication
// ---------------------------------------------------------------------------

/// RFC 5769 Section 2.4 "Sample Request with Long-Term Authentication": a
/// Binding request with USERNAME, NONCE, REALM and MESSAGE-INTEGRITY, and no
/// FINGERPRINT. 116 bytes; header length field 0x0060 (96) = 116 - 20, which is
/// also the HMAC input's length field since MESSAGE-INTEGRITY is last.
///
/// MESSAGE-INTEGRITY (HMAC-SHA1 over bytes `0..92`) verifies with the long-term
/// key [`RFC5769_LONG_TERM_REQUEST_KEY`] = MD5("username:realm:password") where the
/// password is the SASLprep output [`RFC5769_LONG_TERM_REQUEST_PASSWORD_SASLPREP`]
/// ("TheMatrIX"). A key built from the unprocessed password does not verify.
#[rustfmt::skip]
pub const RFC5769_LONG_TERM_REQUEST: &[u8] = &[
    0x00, 0x01, 0x00, 0x60, // Request type and message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0x78, 0xad, 0x34, 0x33, // }
    0xc6, 0xad, 0x72, 0xc0, // }  Transaction ID
    0x29, 0xda, 0x41, 0x2e, // }
    0x00, 0x06, 0x00, 0x12, // USERNAME attribute header
    0xe3, 0x83, 0x9e, 0xe3, // }
    0x83, 0x88, 0xe3, 0x83, // }
    0xaa, 0xe3, 0x83, 0x83, // }  Username value (18 bytes) and padding (2 bytes)
    0xe3, 0x82, 0xaf, 0xe3, // }
    0x82, 0xb9, 0x00, 0x00, // }
    0x00, 0x15, 0x00, 0x1c, // NONCE attribute header
    0x66, 0x2f, 0x2f, 0x34, // }
    0x39, 0x39, 0x6b, 0x39, // }
    0x35, 0x34, 0x64, 0x36, // }
    0x4f, 0x4c, 0x33, 0x34, // }  Nonce value
    0x6f, 0x4c, 0x39, 0x46, // }
    0x53, 0x54, 0x76, 0x79, // }
    0x36, 0x34, 0x73, 0x41, // }
    0x00, 0x14, 0x00, 0x0b, // REALM attribute header
    0x65, 0x78, 0x61, 0x6d, // }
    0x70, 0x6c, 0x65, 0x2e, // }  Realm value (11 bytes) and padding (1 byte)
    0x6f, 0x72, 0x67, 0x00, // }
    0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY attribute header
    0xf6, 0x70, 0x24, 0x65, // }
    0x6d, 0xd6, 0x4a, 0x3e, // }
    0x02, 0xb8, 0xe0, 0x71, // }  HMAC-SHA1 fingerprint
    0x2e, 0x85, 0xc9, 0xa2, // }
    0x8c, 0xa8, 0x96, 0x66, // }
];

/// RFC 5769 Section 2.4: transaction ID.
#[rustfmt::skip]
pub const RFC5769_LONG_TERM_REQUEST_TRANSACTION_ID: [u8; 12] = [
    0x78, 0xad, 0x34, 0x33,
    0xc6, 0xad, 0x72, 0xc0,
    0x29, 0xda, 0x41, 0x2e,
];

/// RFC 5769 Section 2.4: USERNAME "<U+30DE><U+30C8><U+30EA><U+30C3><U+30AF><U+30B9>"
/// (マトリックス), "unaffected by SASLprep processing"; 18 bytes of UTF-8
/// (e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9), padded with 2 zeros.
pub const RFC5769_LONG_TERM_REQUEST_USERNAME: &str =
    "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";

/// RFC 5769 Section 2.4: the password as given, "The<U+00AD>M<U+00AA>tr<U+2168>"
/// (U+00AD SOFT HYPHEN, U+00AA FEMININE ORDINAL INDICATOR, U+2168 ROMAN NUMERAL
/// NINE). Not usable as key material directly: the key uses its SASLprep form,
/// [`RFC5769_LONG_TERM_REQUEST_PASSWORD_SASLPREP`].
pub const RFC5769_LONG_TERM_REQUEST_PASSWORD: &str = "The\u{00AD}M\u{00AA}tr\u{2168}";

/// RFC 5769 Section 2.4: the password after SASLprep (RFC 4013), "TheMatrIX", as
/// the RFC states: U+00AD is mapped to nothing, NFKC maps U+00AA to "a" and U+2168
/// to "IX". This is the form that goes into the key.
pub const RFC5769_LONG_TERM_REQUEST_PASSWORD_SASLPREP: &str = "TheMatrIX";

/// RFC 5769 Section 2.4: NONCE "f//499k954d6OL34oL9FSTvy64sA" (28 bytes, no padding).
pub const RFC5769_LONG_TERM_REQUEST_NONCE: &str = "f//499k954d6OL34oL9FSTvy64sA";

/// RFC 5769 Section 2.4: REALM "example.org" (11 bytes, one 0x00 padding byte).
pub const RFC5769_LONG_TERM_REQUEST_REALM: &str = "example.org";

/// RFC 5769 Section 2.4 (key derivation per RFC 5389 Section 15.4 / RFC 8489
/// Section 9.2.2 with MD5): the 16-byte long-term key
/// MD5("マトリックス:example.org:TheMatrIX") = e8ca7ad59d5eb0518e312911d2dab2a9.
/// Computed with Python hashlib; it verifies this vector's MESSAGE-INTEGRITY.
#[rustfmt::skip]
pub const RFC5769_LONG_TERM_REQUEST_KEY: [u8; 16] = [
    0xe8, 0xca, 0x7a, 0xd5,
    0x9d, 0x5e, 0xb0, 0x51,
    0x8e, 0x31, 0x29, 0x11,
    0xd2, 0xda, 0xb2, 0xa9,
];

/// RFC 5769 Section 2.4: attributes in wire order as `(type, name, value length)`.
pub const RFC5769_LONG_TERM_REQUEST_ATTRIBUTES: &[(u16, &str, u16)] = &[
    (ATTR_USERNAME, "USERNAME", 18),
    (ATTR_NONCE, "NONCE", 28),
    (ATTR_REALM, "REALM", 11),
    (ATTR_MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY", 20),
];

/// RFC 5769 Section 2.4: byte offset of the MESSAGE-INTEGRITY attribute header.
pub const RFC5769_LONG_TERM_REQUEST_MESSAGE_INTEGRITY_OFFSET: usize = 92;

/// RFC 5769 Section 2.4: header length field used in the HMAC-SHA1 input,
/// 92 + 24 - 20 = 96 (0x0060), the same as the packet's.
pub const RFC5769_LONG_TERM_REQUEST_MESSAGE_INTEGRITY_LENGTH_FIELD: u16 = 0x0060;

/// RFC 5769 Section 2.4: the MESSAGE-INTEGRITY (HMAC-SHA1) value.
#[rustfmt::skip]
pub const RFC5769_LONG_TERM_REQUEST_MESSAGE_INTEGRITY: [u8; 20] = [
    0xf6, 0x70, 0x24, 0x65,
    0x6d, 0xd6, 0x4a, 0x3e,
    0x02, 0xb8, 0xe0, 0x71,
    0x2e, 0x85, 0xc9, 0xa2,
    0x8c, 0xa8, 0x96, 0x66,
];

// ---------------------------------------------------------------------------
// RFC 8489 Appendix B.1: Sample Request with Long-Term Authentication with
// MESSAGE-INTEGRITY-SHA256 and USERHASH (published, and Errata ID 6268)
// ---------------------------------------------------------------------------

/// RFC 8489 Appendix B.1 as corrected by RFC Editor Errata ID 6268 (Technical,
/// status Verified; reported by Jared Williams 2020-08-30, verified by Magnus
/// Westerlund 2020-10-19). Use this one, not [`RFC8489_B1_REQUEST_PUBLISHED`].
///
/// A Binding request with USERHASH, NONCE, REALM, PASSWORD-ALGORITHM (SHA-256,
/// no parameters) and MESSAGE-INTEGRITY-SHA256; no USERNAME, no FINGERPRINT.
/// 164 bytes; header length field 0x0090 (144) = 164 - 20. The erratum says: the
/// published length 0x9c was the whole message's length including the 20-byte
/// header; the PASSWORD-ALGORITHM attribute was missing although SHA-256 (not the
/// default MD5) was used to derive the key; so it adds the attribute, fixes the
/// length and gives a recalculated MESSAGE-INTEGRITY-SHA256.
///
/// MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256 over bytes `0..128`, length field 0x0090)
/// verifies with [`RFC8489_B1_KEY`] = SHA-256("マトリックス:example.org:TheMatrIX"),
/// i.e. only with the password "TheMatrIX" ([`RFC8489_B1_PASSWORD_PROCESSED`]);
/// see that constant for why that is the SASLprep form, not OpaqueString's.
/// It does not verify with the MD5 key.
#[rustfmt::skip]
pub const RFC8489_B1_REQUEST: &[u8] = &[
    0x00, 0x01, 0x00, 0x90, // Request type and message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0x78, 0xad, 0x34, 0x33, // }
    0xc6, 0xad, 0x72, 0xc0, // }  Transaction ID
    0x29, 0xda, 0x41, 0x2e, // }
    0x00, 0x1e, 0x00, 0x20, // USERHASH attribute header
    0x4a, 0x3c, 0xf3, 0x8f, // }
    0xef, 0x69, 0x92, 0xbd, // }
    0xa9, 0x52, 0xc6, 0x78, // }
    0x04, 0x17, 0xda, 0x0f, // }  Userhash value (32 bytes)
    0x24, 0x81, 0x94, 0x15, // }
    0x56, 0x9e, 0x60, 0xb2, // }
    0x05, 0xc4, 0x6e, 0x41, // }
    0x40, 0x7f, 0x17, 0x04, // }
    0x00, 0x15, 0x00, 0x29, // NONCE attribute header
    0x6f, 0x62, 0x4d, 0x61, // }
    0x74, 0x4a, 0x6f, 0x73, // }
    0x32, 0x41, 0x41, 0x41, // }
    0x43, 0x66, 0x2f, 0x2f, // }
    0x34, 0x39, 0x39, 0x6b, // }  Nonce value and padding (3 bytes)
    0x39, 0x35, 0x34, 0x64, // }
    0x36, 0x4f, 0x4c, 0x33, // }
    0x34, 0x6f, 0x4c, 0x39, // }
    0x46, 0x53, 0x54, 0x76, // }
    0x79, 0x36, 0x34, 0x73, // }
    0x41, 0x00, 0x00, 0x00, // }
    0x00, 0x14, 0x00, 0x0b, // REALM attribute header
    0x65, 0x78, 0x61, 0x6d, // }
    0x70, 0x6c, 0x65, 0x2e, // }  Realm value (11 bytes) and padding (1 byte)
    0x6f, 0x72, 0x67, 0x00, // }
    0x00, 0x1d, 0x00, 0x04, // PASSWORD-ALGORITHM attribute header
    0x00, 0x02, 0x00, 0x00, // PASSWORD-ALGORITHM value (4 bytes)
    0x00, 0x1c, 0x00, 0x20, // MESSAGE-INTEGRITY-SHA256 attribute header
    0xb5, 0xc7, 0xbf, 0x00, // }
    0x5b, 0x6c, 0x52, 0xa2, // }
    0x1c, 0x51, 0xc5, 0xe8, // }
    0x92, 0xf8, 0x19, 0x24, // }  HMAC-SHA256 value
    0x13, 0x62, 0x96, 0xcb, // }
    0x92, 0x7c, 0x43, 0x14, // }
    0x93, 0x09, 0x27, 0x8c, // }
    0xc6, 0x51, 0x8e, 0x65, // }
];

/// RFC 8489 Appendix B.1, exactly as published in the RFC (superseded by Errata
/// ID 6268, see [`RFC8489_B1_REQUEST`]). Kept as a negative/compatibility vector.
///
/// 156 bytes; attributes USERHASH, NONCE, REALM, MESSAGE-INTEGRITY-SHA256 (no
/// PASSWORD-ALGORITHM). Defects, as verified:
/// * The header length field is 0x009c (156), the total size including the
///   header; it should be 0x0088 (136). A strict decoder must reject it (the
///   length field exceeds the bytes present by 20).
/// * Without PASSWORD-ALGORITHM the key algorithm would be the default MD5
///   (RFC 8489 Section 9.2.2), and the MD5 key does not verify it.
/// * Its MESSAGE-INTEGRITY-SHA256 does NOT verify under RFC 8489 Section 14.6
///   (HMAC input = bytes `0..120` with the length field adjusted to 0x0088). It
///   verifies only as HMAC-SHA256 with key [`RFC8489_B1_KEY`] (SHA-256 of
///   "username:realm:TheMatrIX") over bytes `0..120` with the length field left at
///   the published, wrong 0x009c: the published MAC was computed consistently with
///   the wrong length.
#[rustfmt::skip]
pub const RFC8489_B1_REQUEST_PUBLISHED: &[u8] = &[
    0x00, 0x01, 0x00, 0x9c, // Request type and message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0x78, 0xad, 0x34, 0x33, // }
    0xc6, 0xad, 0x72, 0xc0, // }  Transaction ID
    0x29, 0xda, 0x41, 0x2e, // }
    0x00, 0x1e, 0x00, 0x20, // USERHASH attribute header
    0x4a, 0x3c, 0xf3, 0x8f, // }
    0xef, 0x69, 0x92, 0xbd, // }
    0xa9, 0x52, 0xc6, 0x78, // }
    0x04, 0x17, 0xda, 0x0f, // }  Userhash value (32 bytes)
    0x24, 0x81, 0x94, 0x15, // }
    0x56, 0x9e, 0x60, 0xb2, // }
    0x05, 0xc4, 0x6e, 0x41, // }
    0x40, 0x7f, 0x17, 0x04, // }
    0x00, 0x15, 0x00, 0x29, // NONCE attribute header
    0x6f, 0x62, 0x4d, 0x61, // }
    0x74, 0x4a, 0x6f, 0x73, // }
    0x32, 0x41, 0x41, 0x41, // }
    0x43, 0x66, 0x2f, 0x2f, // }
    0x34, 0x39, 0x39, 0x6b, // }  Nonce value and padding (3 bytes)
    0x39, 0x35, 0x34, 0x64, // }
    0x36, 0x4f, 0x4c, 0x33, // }
    0x34, 0x6f, 0x4c, 0x39, // }
    0x46, 0x53, 0x54, 0x76, // }
    0x79, 0x36, 0x34, 0x73, // }
    0x41, 0x00, 0x00, 0x00, // }
    0x00, 0x14, 0x00, 0x0b, // REALM attribute header
    0x65, 0x78, 0x61, 0x6d, // }
    0x70, 0x6c, 0x65, 0x2e, // }  Realm value (11 bytes) and padding (1 byte)
    0x6f, 0x72, 0x67, 0x00, // }
    0x00, 0x1c, 0x00, 0x20, // MESSAGE-INTEGRITY-SHA256 attribute header
    0xe4, 0x68, 0x6c, 0x8f, // }
    0x0e, 0xde, 0xb5, 0x90, // }
    0x13, 0xe0, 0x70, 0x90, // }
    0x01, 0x0a, 0x93, 0xef, // }  HMAC-SHA256 value
    0xcc, 0xbc, 0xcc, 0x54, // }
    0x4c, 0x0a, 0x45, 0xd9, // }
    0xf8, 0x30, 0xaa, 0x6d, // }
    0x6f, 0x73, 0x5a, 0x01, // }
];

/// RFC 8489 Appendix B.1 (and Errata ID 6268): transaction ID, the same as
/// RFC 5769 Section 2.4's.
pub const RFC8489_B1_TRANSACTION_ID: [u8; 12] = RFC5769_LONG_TERM_REQUEST_TRANSACTION_ID;

/// RFC 8489 Appendix B.1: username "<U+30DE><U+30C8><U+30EA><U+30C3><U+30AF><U+30B9>"
/// (マトリックス), "unaffected by OpaqueString [RFC8265] processing". It is not sent
/// (USERHASH is sent instead) but is an input to USERHASH and to the key.
pub const RFC8489_B1_USERNAME: &str = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";

/// RFC 8489 Appendix B.1: the password as given, "The<U+00AD>M<U+00AA>tr<U+2168>".
///
/// Caution: RFC 8489 calls "TheMatrIX" the result of OpaqueString (RFC 8265)
/// processing of this string, but it is not. OpaqueString rejects this password:
/// U+00AD SOFT HYPHEN is a default-ignorable code point and is DISALLOWED in the
/// PRECIS FreeformClass (checked with the Python `precis-i18n` 1.1.2 library:
/// "DISALLOWED/precis_ignorable_properties"), and OpaqueString only normalises
/// to NFC, so it would leave U+00AA and U+2168 unchanged anyway. "TheMatrIX" is the
/// SASLprep (RFC 4013) result, inherited from RFC 5769 Section 2.4. An
/// OpaqueString implementation must therefore be fed
/// [`RFC8489_B1_PASSWORD_PROCESSED`] directly for this vector.
pub const RFC8489_B1_PASSWORD: &str = "The\u{00AD}M\u{00AA}tr\u{2168}";

/// RFC 8489 Appendix B.1: the processed password "TheMatrIX" that the RFC says
/// follows OpaqueString processing (it is actually the SASLprep result, see
/// [`RFC8489_B1_PASSWORD`]); OpaqueString leaves "TheMatrIX" itself unchanged.
/// Both the published vector and the Errata ID 6268 vector verify only with this.
pub const RFC8489_B1_PASSWORD_PROCESSED: &str = "TheMatrIX";

/// RFC 8489 Appendix B.1: NONCE "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"
/// (41 bytes, 3 zero padding bytes). It starts with the RFC 8489 Section 9.2
/// nonce cookie "obMatJos2" followed by 4 base64 characters "AAAC" carrying the
/// 24 security-feature bits (they decode to 0x00 0x00 0x02).
pub const RFC8489_B1_NONCE: &str = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA";

/// RFC 8489 Section 9.2: the nonce cookie that prefixes [`RFC8489_B1_NONCE`].
pub const RFC8489_B1_NONCE_COOKIE: &str = "obMatJos2";

/// RFC 8489 Appendix B.1: the 4 base64 characters after the nonce cookie.
pub const RFC8489_B1_NONCE_SECURITY_FEATURES: &str = "AAAC";

/// RFC 8489 Appendix B.1: [`RFC8489_B1_NONCE_SECURITY_FEATURES`] base64-decoded.
pub const RFC8489_B1_NONCE_SECURITY_FEATURE_BYTES: [u8; 3] = [0x00, 0x00, 0x02];

/// RFC 8489 Appendix B.1: REALM "example.org" (11 bytes, one 0x00 padding byte).
pub const RFC8489_B1_REALM: &str = "example.org";

/// RFC 8489 Appendix B.1 / Section 14.4: USERHASH = SHA-256("マトリックス:example.org")
/// (username and realm as UTF-8 joined by ':'). Computed with Python hashlib; it
/// equals the USERHASH attribute value in both the published and corrected vectors.
#[rustfmt::skip]
pub const RFC8489_B1_USERHASH: [u8; 32] = [
    0x4a, 0x3c, 0xf3, 0x8f,
    0xef, 0x69, 0x92, 0xbd,
    0xa9, 0x52, 0xc6, 0x78,
    0x04, 0x17, 0xda, 0x0f,
    0x24, 0x81, 0x94, 0x15,
    0x56, 0x9e, 0x60, 0xb2,
    0x05, 0xc4, 0x6e, 0x41,
    0x40, 0x7f, 0x17, 0x04,
];

/// RFC 8489 Appendix B.1 (Errata ID 6268) / Section 9.2.2 with SHA-256: the
/// 32-byte long-term key SHA-256("マトリックス:example.org:TheMatrIX") =
/// dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1. Computed with
/// Python hashlib; it verifies [`RFC8489_B1_REQUEST`]'s MESSAGE-INTEGRITY-SHA256.
/// (The MD5 variant of the key, which does not verify B.1, is
/// [`RFC5769_LONG_TERM_REQUEST_KEY`].)
#[rustfmt::skip]
pub const RFC8489_B1_KEY: [u8; 32] = [
    0xdd, 0x29, 0x5a, 0x61,
    0x3b, 0x90, 0x58, 0xc3,
    0xc2, 0x3d, 0x6d, 0xc7,
    0x16, 0x5b, 0xda, 0x07,
    0x23, 0x04, 0xd9, 0x89,
    0xc9, 0xd0, 0xaf, 0x3a,
    0x8c, 0x7e, 0x18, 0x4b,
    0x4f, 0x9b, 0xb4, 0xa1,
];

/// RFC 8489 Section 18.5 / Errata ID 6268: PASSWORD-ALGORITHM value SHA-256 (0x0002).
pub const RFC8489_B1_PASSWORD_ALGORITHM: u16 = 0x0002;

/// Errata ID 6268 for RFC 8489 Appendix B.1: the PASSWORD-ALGORITHM attribute
/// value, algorithm 0x0002 (SHA-256) and parameters length 0.
pub const RFC8489_B1_PASSWORD_ALGORITHM_VALUE: [u8; 4] = [0x00, 0x02, 0x00, 0x00];

/// RFC 8489 Appendix B.1 per Errata ID 6268: attributes in wire order as
/// `(type, name, value length)`.
pub const RFC8489_B1_REQUEST_ATTRIBUTES: &[(u16, &str, u16)] = &[
    (ATTR_USERHASH, "USERHASH", 32),
    (ATTR_NONCE, "NONCE", 41),
    (ATTR_REALM, "REALM", 11),
    (ATTR_PASSWORD_ALGORITHM, "PASSWORD-ALGORITHM", 4),
    (
        ATTR_MESSAGE_INTEGRITY_SHA256,
        "MESSAGE-INTEGRITY-SHA256",
        32,
    ),
];

/// RFC 8489 Appendix B.1 as published: attributes in wire order as
/// `(type, name, value length)` (no PASSWORD-ALGORITHM; see Errata ID 6268).
pub const RFC8489_B1_REQUEST_PUBLISHED_ATTRIBUTES: &[(u16, &str, u16)] = &[
    (ATTR_USERHASH, "USERHASH", 32),
    (ATTR_NONCE, "NONCE", 41),
    (ATTR_REALM, "REALM", 11),
    (
        ATTR_MESSAGE_INTEGRITY_SHA256,
        "MESSAGE-INTEGRITY-SHA256",
        32,
    ),
];

/// RFC 8489 Appendix B.1 per Errata ID 6268: byte offset of the
/// MESSAGE-INTEGRITY-SHA256 attribute header.
pub const RFC8489_B1_MESSAGE_INTEGRITY_SHA256_OFFSET: usize = 128;

/// RFC 8489 Appendix B.1 per Errata ID 6268: header length field used in the
/// HMAC-SHA256 input, 128 + 36 - 20 = 144 (0x0090), the same as the packet's.
pub const RFC8489_B1_MESSAGE_INTEGRITY_SHA256_LENGTH_FIELD: u16 = 0x0090;

/// RFC 8489 Appendix B.1 per Errata ID 6268: the recalculated
/// MESSAGE-INTEGRITY-SHA256 value; HMAC-SHA256 with [`RFC8489_B1_KEY`].
#[rustfmt::skip]
pub const RFC8489_B1_MESSAGE_INTEGRITY_SHA256: [u8; 32] = [
    0xb5, 0xc7, 0xbf, 0x00,
    0x5b, 0x6c, 0x52, 0xa2,
    0x1c, 0x51, 0xc5, 0xe8,
    0x92, 0xf8, 0x19, 0x24,
    0x13, 0x62, 0x96, 0xcb,
    0x92, 0x7c, 0x43, 0x14,
    0x93, 0x09, 0x27, 0x8c,
    0xc6, 0x51, 0x8e, 0x65,
];

/// RFC 8489 Appendix B.1 as published: the (wrong) header length field 0x009c
/// (156, the total message size). Errata ID 6268 notes 0x9c - 20 = 0x88.
pub const RFC8489_B1_PUBLISHED_LENGTH_FIELD: u16 = 0x009c;

/// RFC 8489 Appendix B.1 as published: byte offset of the MESSAGE-INTEGRITY-SHA256
/// attribute header.
pub const RFC8489_B1_PUBLISHED_MESSAGE_INTEGRITY_SHA256_OFFSET: usize = 120;

/// RFC 8489 Appendix B.1 as published: the header length field that RFC 8489
/// Section 14.6 prescribes for the HMAC input, 120 + 36 - 20 = 136 (0x0088). The
/// published MAC does NOT verify with it (see [`RFC8489_B1_REQUEST_PUBLISHED`]).
pub const RFC8489_B1_PUBLISHED_MESSAGE_INTEGRITY_SHA256_LENGTH_FIELD: u16 = 0x0088;

/// RFC 8489 Appendix B.1 as published (superseded by Errata ID 6268): the
/// MESSAGE-INTEGRITY-SHA256 value. It equals HMAC-SHA256 keyed with
/// [`RFC8489_B1_KEY`] over bytes `0..120` of [`RFC8489_B1_REQUEST_PUBLISHED`] with
/// the length field left at 0x009c, and nothing standard-conforming.
#[rustfmt::skip]
pub const RFC8489_B1_MESSAGE_INTEGRITY_SHA256_PUBLISHED: [u8; 32] = [
    0xe4, 0x68, 0x6c, 0x8f,
    0x0e, 0xde, 0xb5, 0x90,
    0x13, 0xe0, 0x70, 0x90,
    0x01, 0x0a, 0x93, 0xef,
    0xcc, 0xbc, 0xcc, 0x54,
    0x4c, 0x0a, 0x45, 0xd9,
    0xf8, 0x30, 0xaa, 0x6d,
    0x6f, 0x73, 0x5a, 0x01,
];
