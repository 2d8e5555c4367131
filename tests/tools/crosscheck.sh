#!/usr/bin/env bash
# Cross-checks `cxpulse replay` against tests/tools/reference.py (a naive
# second implementation of the contract) on generated traffic with disorder,
# late events, duplicates and malformed lines, under several configurations.
# Opt-in (slow-ish): .ci/run calls it with a small size.
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${RATE:-4}; duration=${DURATION:-40m}
bin="${CARGO_TARGET_DIR:-target}/release/cxpulse"
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat > "$work/a.toml" <<'T'
[engine]
T
cat > "$work/b.toml" <<'T'
[engine]
max_out_of_orderness = "5s"
allowed_lateness = "0s"
grouping_sets = [[], ["channel", "region"], ["region", "agent_id"]]
windows = [ { size = "90s", step = "30s" }, { size = "10m" } ]
[kpi]
service_level_threshold = "20s"
short_abandon_threshold = "10s"
cart_abandon_after = "5m"
T
cat > "$work/c.toml" <<'T'
[engine]
max_out_of_orderness = "1m"
allowed_lateness = "10m"
dedup_horizon = "2m"
grouping_sets = [["agent_id"], ["channel"], []]
windows = [ { size = "30m", step = "10m" }, { size = "2m", step = "1m" } ]
T
# Windows rolled up from other windows' panes: equal steps, a chain
# (1m -> 5m -> 15m steps), a source smaller than its dependent's step, and
# lateness longer than the largest step.
cat > "$work/d.toml" <<'T'
[engine]
max_out_of_orderness = "20s"
allowed_lateness = "20m"
grouping_sets = [[], ["region"], ["channel", "agent_id"]]
windows = [ { size = "3m", step = "1m" }, { size = "1h", step = "1m" }, { size = "10m", step = "5m" }, { size = "45m", step = "15m" } ]
T
fail=0
for seed in ${SEEDS:-1 2}; do
  for scenario in steady wait-spike churn-wave; do
    $bin generate --output "$work/ev.jsonl" --rate "$rate" --duration "$duration" --seed "$seed" \
      --scenario "$scenario" --late 0.02 --late-by 8m --duplicates 0.02 --malformed 0.01 --disorder 40s 2>/dev/null
    for cfg in a b c d; do
      $bin replay --config "$work/$cfg.toml" --input "$work/ev.jsonl" --output "$work/out.jsonl" 2>/dev/null
      python3 tests/tools/reference.py "$work/$cfg.toml" "$work/ev.jsonl" > "$work/ref.jsonl"
      if python3 tests/tools/compare.py "$work/out.jsonl" "$work/ref.jsonl" > "$work/cmp.txt"; then
        echo "seed $seed $scenario config $cfg: $(tail -1 "$work/cmp.txt")"
      else
        fail=1; echo "seed $seed $scenario config $cfg: MISMATCH"; head -20 "$work/cmp.txt"; tail -1 "$work/cmp.txt"
      fi
    done
  done
done
exit $fail
