#!/usr/bin/env bash
# Pipeline throughput against a broker, in one run on the same data:
#   1. raw consume: every input message read to the end, nothing else
#      (examples/topic_dump, one topic after the other);
#   2. `cxpulse run --drain` with delivery = "at-least-once";
#   3. `cxpulse run --drain` with delivery = "exactly-once" (transactions).
# Each run reads the same topics from the beginning in a fresh consumer
# group and is timed from its first processed message to its last (polling
# its /metrics), so start-up and the drain wait are not counted. Figures are
# events/s of input messages.
#
# The broker is librdkafka's mock cluster in its own process
# (examples/mock_broker.rs). It keeps only ~5 MiB per partition, so the
# topics get PARTITIONS (default 32) partitions and the default volume stays
# well under that. EVENTS_RATE and DURATION set the generated volume.
#
#   benches/pipeline.sh            # ~470k events
set -euo pipefail
cd "$(dirname "$0")/.."
partitions=${PARTITIONS:-32}; rate=${EVENTS_RATE:-2000}; duration=${DURATION:-4m}
target="${CARGO_TARGET_DIR:-target}/release"
cargo build --release --quiet --bin cxpulse --example mock_broker --example topic_dump
bin="$target/cxpulse"
work=$(mktemp -d)
broker_pid=""
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

coproc BROKER { PARTITIONS=$partitions "$target/examples/mock_broker"; }
broker_pid=$BROKER_PID
read -r brokers <&"${BROKER[0]}"

config() { # group delivery
  cat <<T
[kafka]
brokers = "$brokers"
group_id = "$1"
delivery = "$2"
[http]
listen = ""
[pipeline]
summary_interval = "0s"
T
}
config bench-load at-least-once > "$work/load.toml"
"$bin" generate --rate "$rate" --duration "$duration" --brokers "$brokers" \
  --config "$work/load.toml" 2> "$work/generate.log"
events=0
for t in cx.tickets cx.chats cx.surveys cx.checkouts; do
  n=$("$target/examples/topic_dump" "$brokers" "$t" | wc -l)
  events=$((events + n))
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "broker: mock cluster, $partitions partitions per input topic; $events input messages"

# 1. Raw consume of the same messages (second read: the first was the count).
start=$(date +%s.%N)
for t in cx.tickets cx.chats cx.surveys cx.checkouts; do
  "$target/examples/topic_dump" "$brokers" "$t" > /dev/null
done
raw=$(python3 -c "print($(date +%s.%N) - $start)")

# 2./3. The pipeline, once per delivery mode, timed by polling its
# /metrics: from the first message processed to the last.
timed_run() { # mode port -> seconds
  "$bin" run --config "$work/$1.toml" --drain 1s > /dev/null 2> "$work/$1.log" &
  local pid=$!
  python3 - "$2" "$events" <<'PY'
import sys, time, urllib.request
port, total = sys.argv[1], int(sys.argv[2])
first = None
deadline = time.time() + 600
while time.time() < deadline:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except OSError:
        time.sleep(0.05)
        continue
    n = sum(float(l.split()[-1]) for l in text.splitlines()
            if l.startswith("cxpulse_messages_consumed_total{"))
    now = time.time()
    if n > 0 and first is None:
        first = (now, n)
    if n >= total:
        # Count the messages before the first sample at the measured rate.
        print((now - first[0]) * total / (total - first[1]))
        break
    time.sleep(0.02)
else:
    sys.exit("timed out")
PY
  wait "$pid"
}
declare -A secs
port=$((20000 + RANDOM % 20000))
for mode in at-least-once exactly-once; do
  config "bench-$mode" "$mode" | sed "s/^listen = \"\"/listen = \"127.0.0.1:$port\"/" > "$work/$mode.toml"
  secs[$mode]=$(timed_run "$mode" "$port")
  grep -q "pipeline stopped" "$work/$mode.log" || { cat "$work/$mode.log"; exit 1; }
  port=$((port + 1))
done

python3 - "$events" "$raw" "${secs[at-least-once]}" "${secs[exactly-once]}" <<'PY'
import sys
n, raw, alo, eos = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"raw consume            {n / raw:>12,.0f} events/s  ({raw:.2f} s)")
print(f"run, at-least-once     {n / alo:>12,.0f} events/s  ({alo:.2f} s)  {raw / alo:.2f} x raw consume")
print(f"run, exactly-once      {n / eos:>12,.0f} events/s  ({eos:.2f} s)  {raw / eos:.2f} x raw consume")
print(f"exactly-once / at-least-once: {alo / eos:.2f} (overhead {100 * (1 - alo / eos):.1f}% of throughput)")
PY
