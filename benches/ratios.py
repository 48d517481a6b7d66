#!/usr/bin/env python3
"""Prints the ratio table of benches/README.md from the last criterion run.

Usage (from the workspace root, after `cargo bench -p turnpike-benches --bench codec`):

    python3 benches/ratios.py [target/criterion]

For every group it reads each entry's median (criterion's `new/estimates.json`) and
divides it by the `turnpike` entry's median: the ratio is how many times slower the
entry is than turnpike. The target is met in a group when every competitor's ratio
(entries not starting with "turnpike") is at least 3.
"""

import json
import pathlib
import sys

GROUPS = ["parse_verify", "build_response", "parse_only"]
TARGET = 3.0


def fmt_ns(ns):
    return f"{ns / 1000:.3f} µs" if ns >= 1000 else f"{ns:.1f} ns"


def medians(root, group):
    out = {}
    for bench in sorted((root / group).glob("*/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        m = est["median"]
        out[meta["function_id"]] = (
            m["point_estimate"],
            m["confidence_interval"]["lower_bound"],
            m["confidence_interval"]["upper_bound"],
        )
    return out


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    for group in GROUPS:
        rows = medians(root, group)
        if "turnpike" not in rows:
            continue
        base = rows["turnpike"][0]
        print(f"\n### `{group}`\n")
        print("| entry | median | 95% CI of median | ratio (entry / turnpike) |")
        print("|---|---:|---:|---:|")
        for name, (med, lo, hi) in sorted(rows.items(), key=lambda kv: kv[1][0]):
            print(f"| {name} | {fmt_ns(med)} | {fmt_ns(lo)} – {fmt_ns(hi)} | {med / base:.2f}× |")
        competitors = {k: v for k, v in rows.items() if not k.startswith("turnpike")}
        if competitors:
            fastest, (fmed, _, _) = min(competitors.items(), key=lambda kv: kv[1][0])
            ratio = fmed / base
            verdict = "met" if ratio >= TARGET else f"missed by {TARGET / ratio:.2f}×"
            print(
                f"\nFastest competitor: {fastest}, {ratio:.2f}× turnpike's time: "
                f"≥ {TARGET:.0f}× target {verdict}."
            )
    steps = medians(root, "turnpike_steps")
    if steps:
        print("\n### `turnpike_steps`\n")
        print("| step | median |")
        print("|---|---:|")
        for name, (med, _, _) in steps.items():
            print(f"| {name} | {fmt_ns(med)} |")


if __name__ == "__main__":
    main()
