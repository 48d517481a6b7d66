//! `[offload]`: the opt-in in-kernel ChannelData fast path (see `docs/ARCHITECTURE.md`,
//! "Kernel and user space").

use serde::Deserialize;
use turnpike_offload::{Hook, XdpAttach};

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
    /// With `mode = "xdp"`: how the program is attached. Default `auto`.
    pub xdp_attach: XdpAttachMode,
}

impl OffloadSection {
    /// Where the loader attaches the program; `None` when off.
    pub fn hook(&self) -> Option<Hook> {
        match self.mode {
            OffloadMode::Off => None,
            OffloadMode::Tc => Some(Hook::Tc),
            OffloadMode::Xdp => Some(Hook::Xdp(match self.xdp_attach {
                XdpAttachMode::Auto => XdpAttach::Auto,
                XdpAttachMode::Native => XdpAttach::Native,
                XdpAttachMode::Generic => XdpAttach::Generic,
            })),
        }
    }
}

/// Where the ChannelData fast path runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffloadMode {
    /// Every datagram goes through user space.
    #[default]
    Off,
    /// A TC (traffic control) ingress program on each interface: works with every
    /// driver, and with veths whose senders leave checksums to offload.
    Tc,
    /// An XDP program on each interface, before the kernel builds an skb: the cheapest
    /// per datagram, for frames from a NIC (their checksums complete). On a veth whose
    /// senders leave checksums to offload it would relay partial sums: use `tc` there.
    Xdp,
}

impl OffloadMode {
    /// The name in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Tc => "tc",
            Self::Xdp => "xdp",
        }
    }
}

/// `xdp_attach`: native (the driver's), generic (the stack's), or whichever the kernel
/// picks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    /// The driver's XDP where it has one, else generic.
    #[default]
    Auto,
    /// The driver's XDP only: an interface without it fails to load (and the server
    /// relays in user space, saying why).
    Native,
    /// Generic XDP: any interface, slower than native.
    Generic,
}
