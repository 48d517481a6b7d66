//! The ICE connectivity-check attributes (RFC 8445 §16.1). A TURN server does not act on
//! them, but they appear in the RFC 5769 vectors and in relayed traffic captures.

use super::{AttrType, flag_attr, u32_attr, u64_attr};

u32_attr!(
    /// PRIORITY (RFC 8445 §7.1.1).
    Priority, AttrType::PRIORITY
);
flag_attr!(
    /// USE-CANDIDATE (RFC 8445 §7.1.2).
    UseCandidate, AttrType::USE_CANDIDATE
);
u64_attr!(
    /// ICE-CONTROLLED (RFC 8445 §7.1.3): the agent's tie-breaker.
    IceControlled, AttrType::ICE_CONTROLLED
);
u64_attr!(
    /// ICE-CONTROLLING (RFC 8445 §7.1.3): the agent's tie-breaker.
    IceControlling, AttrType::ICE_CONTROLLING
);
