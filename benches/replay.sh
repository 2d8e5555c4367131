#!/usr/bin/env bash
# `cxpulse replay` end to end, as a user runs it: one process per run,
# reading a generated JSONL file and writing its records and dead letters
# to files, so start-up, reading, decoding, the engine, the end-of-input
# flush and record encoding are all in the time. The throughput bench
# (`cargo bench --bench throughput`) measures decode + engine in memory,
# best of several runs in one warm process; this is the cold-process
# figure next to it.
#
#   benches/replay.sh                     # 1M events (2,000/s for 500 s), 5 runs
#   RATE=2000 DURATION=2500s RUNS=3 benches/replay.sh    # 5M events
#   BIN=target/pgo/release/cxpulse benches/replay.sh     # another build
#
# In the same run, for the ratio: reading the file once (`wc -l`, the floor
# of any reader). Prints, per run, wall / user / sys seconds and input
# lines per second of wall time. The input (seed 42 by default) is kept in
# $WORK (default target/replay-bench) and reused while its parameters match.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${RATE:-2000}; duration=${DURATION:-500s}; seed=${SEED:-42}; runs=${RUNS:-5}
work=${WORK:-${CARGO_TARGET_DIR:-target}/replay-bench}
bin=${BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin cxpulse
    bin="${CARGO_TARGET_DIR:-target}/release/cxpulse"
fi
mkdir -p "$work"
input="$work/input-$seed-$rate-$duration.jsonl"
if [ ! -s "$input" ]; then
    echo "==> generating $input"
    "$bin" generate --output "$input.tmp" --seed "$seed" --rate "$rate" --duration "$duration" 2> "$work/generate.log"
    mv "$input.tmp" "$input"
fi
lines=$(wc -l < "$input")
echo "input: $lines lines, $(( $(stat -c %s "$input") / 1048576 )) MiB ($input)"
echo "binary: $bin"

# seconds since the epoch, with nanoseconds
now() { date +%s.%N; }
rate_of() { awk -v n="$lines" -v s="$1" 'BEGIN { printf "%d", n / s }'; }

start=$(now); wc -l "$input" > /dev/null; end=$(now)
read_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
echo "read (wc -l): $read_s s, $(rate_of "$read_s") lines/s"

best=""
for i in $(seq "$runs"); do
    # bash's own `time` (no GNU time needed): wall, user, sys seconds
    TIMEFORMAT='%R %U %S'
    { time "$bin" replay --input "$input" --output "$work/out.jsonl" \
        --dead-letter "$work/dead.jsonl" 2> "$work/replay.log"; } 2> "$work/time"
    read -r wall user sys < "$work/time"
    echo "replay run $i: $wall s wall ($user user, $sys sys), $(rate_of "$wall") lines/s"
    if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
        best=$wall
    fi
done
echo "records: $(wc -l < "$work/out.jsonl"), dead letters: $(wc -l < "$work/dead.jsonl")"
echo "best replay: $best s, $(rate_of "$best") lines/s"
