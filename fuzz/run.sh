#!/usr/bin/env bash
# Runs one fuzz target with cargo-fuzz on the stable toolchain (see README.md).
#
#   fuzz/run.sh TARGET 300s        # for 300 seconds
#   fuzz/run.sh TARGET 10000000    # for 10 million executions
#
# New inputs go to a scratch directory ($FUZZ_SCRATCH, default /tmp/turnpike-fuzz/TARGET),
# never into the committed corpus, which is read as seeds. Crashes land in
# fuzz/artifacts/TARGET/. Extra libFuzzer flags: $FUZZ_ARGS. Exit status: libFuzzer's
# (non-zero on a crash). A dictionary in dict/TARGET.dict is passed with -dict.
set -euo pipefail
cd "$(dirname "$0")"
if [ $# -ne 2 ]; then
    echo "usage: $0 TARGET SECONDSs|RUNS" >&2
    exit 2
fi
target=$1
budget=$2
case $budget in
*s) limit="-max_total_time=${budget%s}" ;;
*) limit="-runs=$budget" ;;
esac
scratch=${FUZZ_SCRATCH:-/tmp/turnpike-fuzz/$target}
dict=()
if [ -f "dict/$target.dict" ]; then
    dict=("-dict=dict/$target.dict")
fi
mkdir -p "$scratch" "corpus/$target"
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, -Cpasses=sancov-module);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" "$scratch" "corpus/$target" -- \
    "$limit" -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-}
