//! Compiles `bpf/turn_offload.bpf.c` with clang when the `ebpf` feature is on.

use std::env;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/turn_offload.bpf.c");
    println!("cargo:rerun-if-changed=bpf/turn_offload.h");
    println!("cargo:rerun-if-env-changed=CLANG");
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("turn_offload.bpf.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall"]);
    // <asm/types.h> and friends live in the Debian multiarch directory.
    if let Some(dir) = multiarch_include() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c")
        .arg("bpf/turn_offload.bpf.c")
        .arg("-o")
        .arg(&object);
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "{clang} failed ({s}) compiling bpf/turn_offload.bpf.c; the ebpf feature needs \
             clang and the libbpf headers (Debian: apt-get install clang libbpf-dev)"
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "the ebpf feature needs clang to build the BPF program, and {clang:?} was not \
             found (Debian: apt-get install clang libbpf-dev; or set CLANG)"
        ),
        Err(e) => panic!("cannot run {clang}: {e}"),
    }
}

/// `/usr/include/<arch>-linux-<env>` for the host, if it exists.
fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let abi = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_else(|_| "gnu".to_owned());
    let triple = match arch.as_str() {
        "arm" => "arm-linux-gnueabihf".to_owned(),
        "x86" => format!("i386-linux-{abi}"),
        "powerpc64" => format!("powerpc64le-linux-{abi}"),
        _ => format!("{arch}-linux-{abi}"),
    };
    let dir = Path::new("/usr/include").join(triple);
    dir.is_dir().then_some(dir)
}
