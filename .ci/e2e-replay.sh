#!/usr/bin/env bash
# Replays the contract's worked example (copied under tests/data/example)
# with the release binary and compares the latest revision of every row
# with the expected output: exact counts, numerators and values, quantiles
# within 1%, no missing and no extra rows.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"${CARGO_TARGET_DIR:-target}/release/cxpulse" replay \
  --config tests/data/example/config.toml \
  --input tests/data/example/events.jsonl \
  --output "$out/kpis.jsonl" \
  --dead-letter "$out/dead.jsonl"
python3 tests/tools/compare.py "$out/kpis.jsonl" tests/data/example/expected.jsonl
dead=$(wc -l < "$out/dead.jsonl")
[ "$dead" -eq 36 ] || { echo "expected 36 dead letters, got $dead"; exit 1; }
echo "e2e replay: ok ($dead dead letters)"
