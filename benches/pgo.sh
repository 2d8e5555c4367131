#!/usr/bin/env bash
# Profile-guided optimization (PGO) of cxpulse, measured with the
# throughput bench.
#
#   benches/pgo.sh                      # build, train, rebuild, then run the bench
#   PHASES=full RUNS=5 benches/pgo.sh   # bench settings pass through (EVENTS, RUNS, PHASES, SEED)
#
# 1. builds the bench and the `cxpulse` binary with the cxpulse crate
#    instrumented (`-Cprofile-generate`);
# 2. trains them on traffic the bench does not measure: the bench's
#    decode + engine phase on seed 7 (it measures seed 42), and
#    `cxpulse replay` of a generated file (seed 7 as well), which adds
#    record encoding and output;
# 3. merges the profiles and rebuilds with `-Cprofile-use`;
# 4. runs the bench, and leaves the optimized binary at
#    `target/pgo/release/cxpulse`.
#
# Only the cxpulse crates (library, binary, bench) are instrumented, through
# a rustc wrapper: dependencies are built once, with the same flags, and
# shared by both builds. The generic code the engine instantiates (tables,
# sorts, maps) is compiled in the cxpulse crate and so is profiled too.
#
# Needs `llvm-profdata` of rustc's LLVM major version: found as
# `llvm-profdata-N`, under `/usr/lib/llvm-N/bin`, or in rustup's
# `llvm-tools` component; otherwise installed with apt (`llvm-N`, a Debian
# package) when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${PGO_TARGET_DIR:-$PWD/target/pgo}
profiles=$target/profiles
mkdir -p "$target"

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
find_profdata() {
    local sysroot
    sysroot=$(rustc --print sysroot)
    for p in "$(command -v "llvm-profdata-$llvm_major" || true)" \
        "/usr/lib/llvm-$llvm_major/bin/llvm-profdata" \
        "$sysroot"/lib/rustlib/*/bin/llvm-profdata; do
        if [ -n "$p" ] && [ -x "$p" ]; then
            echo "$p"
            return
        fi
    done
}
profdata=$(find_profdata)
if [ -z "$profdata" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "==> installing llvm-$llvm_major (llvm-profdata) with apt"
        # Without an index yet (a fresh machine), update it and try again;
        # a failure falls through to the error below (the log says why).
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "llvm-$llvm_major" > "$target/apt.log" 2>&1 ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "llvm-$llvm_major"; } >> "$target/apt.log" 2>&1 ||
            echo "apt could not install llvm-$llvm_major: see $target/apt.log" >&2
        profdata=$(find_profdata)
    fi
fi
if [ -z "$profdata" ]; then
    echo "error: no llvm-profdata for LLVM $llvm_major (install llvm-$llvm_major, or: rustup component add llvm-tools)" >&2
    exit 2
fi
echo "==> llvm-profdata: $profdata"

# Adds $PGO_FLAGS to the cxpulse crates only (see above).
wrapper=$target/rustc-wrapper
cat > "$wrapper" << 'EOF'
#!/bin/sh
rustc=$1
shift
case " $* " in
*" --crate-name cxpulse "* | *" --crate-name throughput "*)
    # shellcheck disable=SC2086
    exec "$rustc" "$@" $PGO_FLAGS ;;
esac
exec "$rustc" "$@"
EOF
chmod +x "$wrapper"

build() {
    # Cargo does not see the wrapper's flags: the cxpulse crates are cleaned
    # so that each build compiles them with the flags of its step.
    cargo clean --release -p cxpulse --target-dir "$target" 2> /dev/null
    # One codegen unit: the profile then guides inlining across the whole
    # crate (the plain build's four units split it).
    if ! PGO_FLAGS="$1" RUSTC_WRAPPER="$wrapper" CARGO_TARGET_DIR="$target" \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
        cargo build --release --bin cxpulse --bench throughput > "$target/build.log" 2>&1; then
        cat "$target/build.log" >&2
        exit 1
    fi
}
bench_bin() {
    find "$target/release/deps" -maxdepth 1 -name 'throughput-*' -type f -perm -u+x -newer "$1" | head -n 1
}

echo "==> 1/3 instrumented build"
rm -rf "$profiles"
mkdir -p "$profiles"
stamp=$target/stamp
touch "$stamp"
build "-Cprofile-generate=$profiles"
bench=$(bench_bin "$stamp")

echo "==> 2/3 training on seed 7 (the bench measures seed ${SEED:-42})"
export LLVM_PROFILE_FILE=$profiles/cxpulse-%p-%m.profraw
# Each step's output goes to train.log: with `set -e`, a failing step
# stops the script and the log says why.
train_log=$target/train.log
trap 'echo "error: training failed; see $train_log" >&2' ERR
SEED=7 EVENTS=1000000 RUNS=1 PHASES=full "$bench" > "$train_log" 2>&1
"$target/release/cxpulse" generate --seed 7 --rate 2000 --duration 5m --output "$target/train.jsonl" >> "$train_log" 2>&1
"$target/release/cxpulse" replay --input "$target/train.jsonl" --output /dev/null --dead-letter /dev/null >> "$train_log" 2>&1
trap - ERR
unset LLVM_PROFILE_FILE
"$profdata" merge -o "$target/cxpulse.profdata" "$profiles"/cxpulse-*.profraw
rm -f "$target/train.jsonl"

echo "==> 3/3 optimized build"
touch "$stamp"
build "-Cprofile-use=$target/cxpulse.profdata -Cllvm-args=-pgo-warn-missing-function=false"
bench=$(bench_bin "$stamp")
echo "==> optimized binary: $target/release/cxpulse"
echo "==> bench: $bench"
"$bench"
