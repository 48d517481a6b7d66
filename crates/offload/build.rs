//! Compiles the BPF programs (`bpf/turn_tc.bpf.c`, `bpf/turn_xdp.bpf.c`) with clang when
//! the `ebpf` feature is on.

use std::env;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for file in PROGRAMS.iter().chain(&["turn_offload.h", "turn_common.h"]) {
        println!("cargo:rerun-if-changed=bpf/{file}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for program in PROGRAMS {
        compile(program, &out.join(program.replace(".c", ".o")));
    }
}

/// The programs, each compiled into an object of its own (`turn_tc.bpf.o`, ...).
const PROGRAMS: [&str; 2] = ["turn_tc.bpf.c", "turn_xdp.bpf.c"];

fn compile(program: &str, object: &Path) {
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let mut cmd = Command::new(&clang);
    // v3: the atomic fetch-and-add and compare-and-swap the user budgets need (kernel ≥ 5.12).
    cmd.args(["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall"]);
    // <asm/types.h> and friends live in the Debian multiarch directory.
    if let Some(dir) = multiarch_include() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c")
        .arg(Path::new("bpf").join(program))
        .arg("-o")
        .arg(object);
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "{clang} failed ({s}) compiling bpf/{program}; the ebpf feature needs \
             clang and the libbpf headers (Debian: apt-get install clang libbpf-dev)"
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "the ebpf feature needs clang to build the BPF programs, and {clang:?} was not \
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
