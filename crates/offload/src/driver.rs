//! An interface's driver name, as `ethtool -i` shows it: the XDP path tells a veth
//! (whose senders may hand over partial checksums) from a NIC by it.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

/// `SIOCETHTOOL` and `ETHTOOL_GDRVINFO` (`include/uapi/linux/sockios.h`, `ethtool.h`).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// `struct ethtool_drvinfo`.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ifreq` with its `ifr_data` member.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut DrvInfo,
    pad: [u8; 16],
}

/// The driver of interface `name` ("veth", "virtio_net", "mlx5_core", ...); `None` if
/// the interface does not exist or does not say.
pub fn driver(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &raw mut info,
        pad: [0; 16],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `req` is a live `struct ifreq` with a NUL-terminated name whose `ifr_data`
    // points to a live, writable `struct ethtool_drvinfo` with `cmd` set; the kernel
    // writes no more than that struct during the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    let driver = std::str::from_utf8(&info.driver[..end]).ok()?;
    (!driver.is_empty()).then(|| driver.to_owned())
}

#[cfg(test)]
mod tests {
    use super::driver;

    #[test]
    fn loopback_has_no_driver_and_a_missing_interface_none() {
        assert_eq!(driver("tpo-no-such-if"), None);
        assert_eq!(driver(""), None);
        assert_eq!(driver("a-name-far-too-long-for-linux"), None);
        // lo answers with an empty driver name, or not at all.
        assert_eq!(driver("lo"), None);
    }
}
