#!/usr/bin/env bash
# CI fuzz smoke test: regenerate the seeds, then run every fuzz target for
# FUZZ_SECONDS (default 30) with the dictionary and the memory limits of
# fuzz/README.md. Fails on any crash, leak, timeout or out-of-memory.
#
#   FUZZ_SECONDS=30 bash fuzz/ci-smoke.sh
#
# Needs the nightly toolchain; installs cargo-fuzz if missing.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
seconds="${FUZZ_SECONDS:-30}"
# No leak checking, per run (-detect_leaks=0) nor at exit: read_archive
# starts a rayon pool per call whose threads outlive it, which LSan reports.
export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

./make_seeds.sh

# Every target fuzz/Cargo.toml declares.
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build -O -a

status=0
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "=== fuzz $t for ${seconds}s"
    case "$t" in
        # Structured input (arbitrary): no dictionary, full lengths at once.
        roundtrip|range_coder|lm_chunk) extra=(-max_len=16384 -len_control=0) ;;
        # Plain bytes, seeded with payloads: no archive dictionary.
        cm_chunk) extra=(-max_len=65536) ;;
        *) extra=(-dict=lza.dict -max_len=65536) ;;
    esac
    if ! cargo +nightly fuzz run -O -a "$t" "corpus/$t" -- \
        "${extra[@]}" \
        -max_total_time="$seconds" \
        -timeout=20 \
        -rss_limit_mb=2048 \
        -malloc_limit_mb=512 \
        -detect_leaks=0 \
        -print_final_stats=1 2>&1 | tail -n 25; then
        echo "!!! fuzz target $t failed; artifacts:"
        ls -l "artifacts/$t" || true
        status=1
    fi
done
exit $status
