//! `[offload]`: the opt-in in-kernel ChannelData fast path (see `docs/ARCHITECTURE.md`,
//! "Kernel and user space").

use serde::Deserialize;

/// `[offload]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffloadSection {
    /// Where the program runs. Default `off`.
    pub mode: OffloadMode,
    /// The interfaces to attach to. Empty (the default): every interface that holds a
    /// UDP listener or relay address (with a wildcard listener: every interface that is
    /// up, but loopback).
    pub interfaces: Vec<String>,
}

/// Where the ChannelData fast path runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffloadMode {
    /// Every datagram goes through user space.
    #[default]
    Off,
    /// A TC (traffic control) ingress program on each interface: works with every
    /// driver.
    Tc,
}
