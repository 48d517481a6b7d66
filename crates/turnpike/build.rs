//! Records when the binary was built (`TURNPIKE_BUILD_UNIX`, unix seconds; from
//! `SOURCE_DATE_EPOCH` when set, for reproducible builds), so `turnpike doctor` can tell a
//! clock set before the binary existed. The script reruns only when it or that variable
//! changes, so the figure is a lower bound of the build time, which is all doctor needs.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=TURNPIKE_BUILD_UNIX={secs}");
}
