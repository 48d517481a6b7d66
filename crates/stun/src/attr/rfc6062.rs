//! The attribute of TURN TCP allocations (RFC 6062 §6.2).

use super::{AttrType, u32_attr};

u32_attr!(
    /// CONNECTION-ID (RFC 6062 §6.2.1): names a peer data connection for ConnectionBind.
    ConnectionId, AttrType::CONNECTION_ID
);
