#!/bin/sh
# Builds the Debian package: target/debian/turnpike_<version>-1_<arch>.deb.
#
# Needs cargo-deb (`cargo install cargo-deb --locked`). The man page is made by the
# binary itself (`turnpike man`, from the clap definitions), compressed here and
# packaged from the target directory. Metadata: [package.metadata.deb] in
# crates/turnpike/Cargo.toml.
set -eu
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p turnpike
"$target/release/turnpike" man | gzip -9n > "$target/release/turnpike.1.gz"
cargo deb -p turnpike --no-build --locked "$@"
