//! The attribute of TURN mobility (RFC 8016 §3.1).

use super::{AttrType, bytes_attr};

bytes_attr!(
    /// MOBILITY-TICKET (RFC 8016 §3.1): an opaque ticket, issued by the server, that lets
    /// a Refresh from a new 5-tuple take over an allocation.
    MobilityTicket, AttrType::MOBILITY_TICKET
);
