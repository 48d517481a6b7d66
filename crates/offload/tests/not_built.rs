//! Without the `ebpf` feature the crate has no program, and says so.

#![cfg(all(target_os = "linux", not(feature = "ebpf")))]

use turnpike_offload::{Hook, Offload, OffloadError, XdpAttach};

#[test]
fn load_says_built_without_the_feature() {
    for hook in [Hook::Tc, Hook::Xdp(XdpAttach::Auto)] {
        let err = Offload::load(&["lo".to_owned()], hook).expect_err("no program in this build");
        assert!(matches!(err, OffloadError::NotBuilt), "{err:?}");
        let err = Offload::probe(&["lo".to_owned()], hook).expect_err("nor to probe");
        assert!(matches!(err, OffloadError::NotBuilt), "{err:?}");
    }
    let err = Offload::load(&["lo".to_owned()], Hook::Tc).expect_err("no program");
    assert!(
        err.to_string().contains("without the ebpf feature"),
        "{err}"
    );
}
