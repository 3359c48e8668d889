#!/usr/bin/env bash
# Stress test of every concurrent path: a text that the default method codes
# as one chunk of two streams (decoded on two threads that hand values to
# each other byte by byte) is extracted and created many times under
# contention, and every result is checked.
#
# Each run takes the next of these settings in turn:
#   extract/verify: -T 2 with a busy process on each core; -T 2 with both
#     threads on one core (taskset -c FIRST); -T 3; -T 7; -T 2 with random
#     delays in the two-thread exchange (LZA_TEST_CHAOS); the same pinned to
#     one core; verify -T 2 with busy processes; each kernel path of
#     $LZA_KERNELS in turn (default: the detected one).
#   create: -T 2 with a busy process on each core; -T 2 on one core; -T 3;
#     -T 7. The archive must be byte-identical with the first one.
# Extracted files must equal the input. The script prints one line per
# failure and a count, and exits 1 if anything failed.
#
# usage: benches/stress.sh [-x EXTRACTIONS] [-c CREATIONS] [-j WORKERS]
#                          [-b LZA] [-t TEXT] [-o DIR]
#   -x  extractions (and verifies) in all, default 500
#   -c  creations in all, default 100
#   -j  workers side by side, each on its own pair of cores (core 2w and
#       2w+1), default 1; the runs are shared out among them
#   -b  the lza binary, default target/release/lza
#   -t  the text (at least 256 KiB, so it is one two-stream chunk); default:
#       300,000 bytes of this repository's spec, README and sources
#   -o  work directory (kept), default a new temporary one
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRACTIONS=500 CREATIONS=100 WORKERS=1 LZA=target/release/lza TEXT= WORK=
while getopts "x:c:j:b:t:o:" opt; do
    case $opt in
        x) EXTRACTIONS=$OPTARG ;;
        c) CREATIONS=$OPTARG ;;
        j) WORKERS=$OPTARG ;;
        b) LZA=$OPTARG ;;
        t) TEXT=$OPTARG ;;
        o) WORK=$OPTARG ;;
        *) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
    esac
done
LZA=$(realpath "$LZA")
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK/in"
WORK=$(realpath "$WORK")
if [ -n "$TEXT" ]; then
    cp "$TEXT" "$WORK/in/t.txt"
else
    # (cat ends on a closed pipe once head has its bytes)
    { cat format-spec.md README.md $(find src -name '*.rs' | sort) || true; } | head -c 300000 > "$WORK/in/t.txt"
fi
KERNELS=${LZA_KERNELS:-}
CORES=$(nproc)
have_taskset=0
taskset -c 0 true 2>/dev/null && have_taskset=1

"$LZA" c -T 2 -f "$WORK/ref.lza" -C "$WORK" in
echo "text: $(stat -c %s "$WORK/in/t.txt") bytes, archive $(stat -c %s "$WORK/ref.lza") bytes;" \
    "$EXTRACTIONS extractions, $CREATIONS creations, $WORKERS worker(s), $CORES cores"

# hog CPU...: a busy process on each listed core, until stop_hogs
hogs=()
hog() {
    for c in "$@"; do
        if [ $have_taskset = 1 ]; then
            taskset -c "$c" sh -c 'while :; do :; done' &
        else
            sh -c 'while :; do :; done' &
        fi
        hogs+=($!)
    done
}
stop_hogs() {
    if [ ${#hogs[@]} -gt 0 ]; then
        kill "${hogs[@]}" 2>/dev/null || true
        wait "${hogs[@]}" 2>/dev/null || true
    fi
    hogs=()
}

# worker W: runs I = W, W + WORKERS, ... of each kind on cores 2W, 2W+1
worker() {
    local w=$1 c0=$(( (2 * $1) % CORES )) c1=$(( (2 * $1 + 1) % CORES ))
    local pin="taskset -c $c0,$c1" one="taskset -c $c0"
    [ $have_taskset = 1 ] || { pin=; one=; }
    local fails=0 i mode dir log env kernel what
    for (( i = w; i < EXTRACTIONS; i += WORKERS )); do
        mode=$(( i % 7 )) dir="$WORK/x$i" log="$WORK/x$i.log" env=() what=
        kernel=
        if [ -n "$KERNELS" ]; then
            set -- $KERNELS
            shift $(( (i / 7) % $# ))
            kernel=$1
            env+=("LZA_KERNEL=$kernel")
        fi
        case $mode in
            0) hog $c0 $c1; what="x -T 2, busy cores" ;;
            1) what="x -T 2, one core" ;;
            2) what="x -T 3" ;;
            3) what="x -T 7" ;;
            4) env+=("LZA_TEST_CHAOS=$i"); what="x -T 2, delays" ;;
            5) env+=("LZA_TEST_CHAOS=$i"); what="x -T 2, one core, delays" ;;
            6) hog $c0 $c1; what="verify -T 2, busy cores" ;;
        esac
        local t=2 cmd=x run=$pin
        case $mode in 2) t=3 ;; 3) t=7 ;; 6) cmd=verify ;; esac
        case $mode in 1 | 5) run=$one ;; esac
        local args=("$cmd" -T $t -f "$WORK/ref.lza")
        [ $cmd = x ] && args+=(-C "$dir")
        if ! env "${env[@]}" $run "$LZA" "${args[@]}" 2> "$log"; then
            echo "FAIL extraction $i ($what${kernel:+, $kernel}): $(tail -n 1 "$log")"
            fails=$((fails + 1))
        elif [ $cmd = x ] && ! cmp -s "$dir/in/t.txt" "$WORK/in/t.txt"; then
            echo "FAIL extraction $i ($what${kernel:+, $kernel}): extracted file differs"
            fails=$((fails + 1))
        else
            rm -rf "$dir" "$log"
        fi
        stop_hogs
    done
    for (( i = w; i < CREATIONS; i += WORKERS )); do
        mode=$(( i % 4 )) log="$WORK/c$i.log"
        local t=2 run=$pin
        case $mode in
            0) hog $c0 $c1; what="c -T 2, busy cores" ;;
            1) run=$one; what="c -T 2, one core" ;;
            2) t=3; what="c -T 3" ;;
            3) t=7; what="c -T 7" ;;
        esac
        if ! $run "$LZA" c -T $t -f "$WORK/c$i.lza" -C "$WORK" in 2> "$log"; then
            echo "FAIL creation $i ($what): $(tail -n 1 "$log")"
            fails=$((fails + 1))
        elif ! cmp -s "$WORK/c$i.lza" "$WORK/ref.lza"; then
            echo "FAIL creation $i ($what): archive differs"
            fails=$((fails + 1))
        else
            rm -f "$WORK/c$i.lza" "$log"
        fi
        stop_hogs
    done
    echo "$fails" > "$WORK/fails.$w"
}

start=$(date +%s)
pids=()
for (( w = 0; w < WORKERS; w++ )); do
    worker $w &
    pids+=($!)
done
wait "${pids[@]}"
fails=0
for (( w = 0; w < WORKERS; w++ )); do
    fails=$(( fails + $(cat "$WORK/fails.$w") ))
done
echo "done in $(( $(date +%s) - start )) s: $EXTRACTIONS extractions and verifies," \
    "$CREATIONS creations, $fails failed (work directory $WORK)"
[ "$fails" = 0 ]
