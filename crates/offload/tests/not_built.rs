//! Without the `ebpf` feature the crate has no program, and says so.

#![cfg(all(target_os = "linux", not(feature = "ebpf")))]

use turnpike_offload::{Offload, OffloadError};

#[test]
fn load_says_built_without_the_feature() {
    let err = Offload::load(&["lo".to_owned()]).expect_err("no program in this build");
    assert!(matches!(err, OffloadError::NotBuilt), "{err:?}");
    assert!(
        err.to_string().contains("without the ebpf feature"),
        "{err}"
    );
}
