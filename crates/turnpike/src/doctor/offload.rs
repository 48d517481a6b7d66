//! The `[offload]` check: whether the in-kernel fast path would come up. The program is
//! loaded into the kernel and verified, never attached (a running server's stays as it
//! is); a fast path that cannot load is a WARN, as the server then relays in user space.

use turnpike_server::{Config, OffloadError, OffloadMode, offload_veths, probe_offload};

use super::{Check, Verdict};

/// One line for `[offload]`.
pub(super) fn check(config: &Config) -> Check {
    let name = "offload";
    let Some((interfaces, verdict)) = probe_offload(config) else {
        return Check::ok(name, "off: every datagram is relayed in user space");
    };
    let mode = config.offload.mode;
    match verdict {
        Ok(()) if mode == OffloadMode::Xdp && !offload_veths(&interfaces).is_empty() => Check::bad(
            Verdict::Warn,
            name,
            format!(
                "xdp on {}: the kernel takes the program, but {} are veths: XDP sees the \
                     partial checksum of a sender that leaves it to offload and relays it as \
                     if complete",
                interfaces.join(", "),
                offload_veths(&interfaces).join(", ")
            ),
            "use mode = \"tc\" on veths, or turn tx checksum offload off on their \
                 peers (ethtool -K <peer> tx off)",
        ),
        Ok(()) => Check::ok(
            name,
            format!(
                "{} on {}: the kernel takes the program (loaded and verified here, not attached)",
                mode.name(),
                interfaces.join(", ")
            ),
        ),
        Err(e) => {
            let hint = match e {
                OffloadError::NotBuilt => {
                    "build turnpike with `--features ebpf` (needs clang and libbpf-dev)"
                }
                OffloadError::NoPrivilege { .. } => {
                    "run as root, or give the service CAP_BPF and CAP_NET_ADMIN \
                     (systemd: AmbientCapabilities=)"
                }
                OffloadError::InterfaceMissing { .. } | OffloadError::NoInterfaces => {
                    "name the interfaces that carry client and peer traffic in [offload] \
                     interfaces"
                }
                _ => "set [offload] mode = \"off\", or see the reason above",
            };
            Check::bad(
                Verdict::Warn,
                name,
                format!("{e}; the server will relay in user space"),
                hint,
            )
        }
    }
}
