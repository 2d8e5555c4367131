#!/usr/bin/env bash
# End-to-end check of the monitoring deployment (deploy/, docker-compose.yml):
#
#  1. promtool: check config, check rules, unit-test every alert and
#     recording rule (deploy/prometheus/tests);
#  2. tests/tools/check_deploy.py: compose, k8s, Grafana, Alertmanager files
#     against the repo (config keys, metric names, mounted paths ...);
#  3. live: the embedded demo (target/release/cxpulse, in-process mock Kafka
#     and generator, event time sped up) scraped by a real Prometheus on
#     loopback that loads deploy/prometheus/rules; then EVERY Grafana panel
#     query, variable query and recording rule must return a non-empty
#     result through /api/v1/query, and no rule may fail to evaluate.
#
# Runs on a fresh Debian (bookworm) machine as root, or as a user with sudo,
# with the Rust toolchain, python3 and apt: it installs Debian's prometheus
# package (2.42: promtool + prometheus) if promtool is missing, without
# starting its service, and PyYAML if python3 lacks it.
#
# Environment: PROM_TIMEOUT (seconds to wait for every live query, 150),
# CXPULSE_TIME_SCALE (embedded.time_scale for the demo, 600).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # Keep maintainer scripts from starting services (the prometheus package
  # ships one): a policy-rc.d that forbids it, removed again if ours.
  local policy=/usr/sbin/policy-rc.d ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    ours=1
  fi
  local rc=0
  { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "$@"; } || rc=$?
  if [ "$ours" -eq 1 ]; then as_root rm -f "$policy"; fi
  return "$rc"
}

# ---------------------------------------------------------------------------
step "tools"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "installing Debian's prometheus package (promtool, prometheus)"
  apt_install prometheus
  # The service must not run (the package may still enable it for boot).
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl stop prometheus >/dev/null 2>&1 || true
  fi
fi
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  echo "installing PyYAML"
  apt_install python3-yaml || true
  python3 -c 'import yaml' >/dev/null 2>&1 \
    || python3 -m pip install --quiet pyyaml \
    || python3 -m pip install --quiet --break-system-packages pyyaml
fi
promtool --version 2>&1 | head -1
prometheus --version 2>&1 | head -1

# ---------------------------------------------------------------------------
step "promtool check config deploy/prometheus/prometheus.yml"
promtool check config deploy/prometheus/prometheus.yml

step "promtool check rules deploy/prometheus/rules/*.yml"
promtool check rules deploy/prometheus/rules/*.yml

step "promtool test rules deploy/prometheus/tests/*.yml"
promtool test rules deploy/prometheus/tests/*.yml

# ---------------------------------------------------------------------------
bin="${CARGO_TARGET_DIR:-target}/release/cxpulse"
step "cargo build --release --bin cxpulse"
cargo build --release --bin cxpulse

bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

step "check_deploy.py (static)"
python3 tests/tools/check_deploy.py --binary "$bin"

# ---------------------------------------------------------------------------
step "live: embedded cxpulse + Prometheus on loopback"
work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] || continue
      echo "--- last lines of $(basename "$log")"
      tail -n 20 "$log"
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT INT TERM

read -r cx_port prom_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)

# The embedded demo (no brokers): event time runs CXPULSE_TIME_SCALE times
# wall time, so 5m/1h/24h windows fire within seconds. Checkpoints go to
# the mock cluster; nothing is written to the repo.
(
  cd "$work"
  unset CXPULSE__KAFKA__BROKERS
  CXPULSE__HTTP__LISTEN="127.0.0.1:$cx_port" \
  CXPULSE__EMBEDDED__TIME_SCALE="${CXPULSE_TIME_SCALE:-600}" \
  CXPULSE__PIPELINE__SUMMARY_INTERVAL=0s \
    exec "$bin" run
) >"$work/cxpulse.log" 2>&1 &
pids+=($!)

# deploy/prometheus/prometheus.yml with the targets on loopback, a 2s scrape
# and evaluation interval, the same rule files, and no Alertmanager.
python3 - "$root/deploy/prometheus/prometheus.yml" "$work/prometheus.yml" "$cx_port" "$prom_port" <<'PY'
import os, sys, yaml
src, dst, cx_port, prom_port = sys.argv[1:]
cfg = yaml.safe_load(open(src))
cfg["global"]["scrape_interval"] = "2s"
cfg["global"]["evaluation_interval"] = "2s"
cfg["global"]["scrape_timeout"] = "2s"
base = os.path.dirname(src)
cfg["rule_files"] = [os.path.join(base, f) for f in cfg["rule_files"]]
cfg.pop("alerting", None)
rewrite = {"cxpulse": f"127.0.0.1:{cx_port}", "prometheus": f"127.0.0.1:{prom_port}"}
# Jobs other than these two have nothing to scrape on loopback: dropped.
cfg["scrape_configs"] = [j for j in cfg["scrape_configs"] if j["job_name"] in rewrite]
for job in cfg["scrape_configs"]:
    job["static_configs"] = [{"targets": [rewrite[job["job_name"]]]}]
yaml.safe_dump(cfg, open(dst, "w"), sort_keys=False)
PY
promtool check config "$work/prometheus.yml" >/dev/null

prometheus \
  --config.file="$work/prometheus.yml" \
  --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" \
  --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)

wait_http() { # url what seconds
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null; then
      echo "$2 is up"
      return 0
    fi
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "a process exited early"; return 1; }
    done
    sleep 0.5
  done
  echo "$2 did not answer $1 within $3 s"
  return 1
}
wait_http "http://127.0.0.1:$cx_port/readyz" "cxpulse (/readyz)" 90
wait_http "http://127.0.0.1:$prom_port/-/ready" "prometheus" 60

step "live: every dashboard query and recording rule returns data"
python3 tests/tools/check_deploy.py --live "http://127.0.0.1:$prom_port" \
  --timeout "${PROM_TIMEOUT:-150}" --var window=1h

echo
echo "e2e prometheus: ok"
