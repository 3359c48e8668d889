#!/usr/bin/env bash
# Benchmark of lza's zstd path against tar|zstd and tar|xz on the same
# tree, in one run. Prints a Markdown table: archive bytes, ratio, create and
# extract MB/s (input bytes per wall second), peak RSS.
#
#   benches/zstd-path.sh [DIR] [THREADS]     (default ../shared/bench/silesia, all cores)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$here/../shared/bench/silesia}
threads=${2:-$(nproc)}
lza=${LZA:-$here/target/release/lza}
[ -x "$lza" ] || cargo build --release --manifest-path "$here/Cargo.toml" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
parent=$(dirname "$(realpath "$dir")"); base=$(basename "$dir")
raw=$(du -sb --apparent-size "$dir" | cut -f1)

# measure NAME CREATE-CMD EXTRACT-CMD ARCHIVE
measure() {
  local name=$1 c=$2 x=$3 archive=$4
  rm -rf "$work/out" && mkdir "$work/out"
  /usr/bin/time -f '%e %M' -o "$work/tc" bash -c "$c"
  /usr/bin/time -f '%e %M' -o "$work/tx" bash -c "$x"
  diff -r "$dir" "$work/out/$base" >/dev/null || { echo "$name: round trip differs" >&2; exit 1; }
  local size; size=$(stat -c %s "$archive")
  read -r ct cm < "$work/tc"; read -r xt xm < "$work/tx"
  awk -v n="$name" -v s="$size" -v r="$raw" -v ct="$ct" -v xt="$xt" -v cm="$cm" -v xm="$xm" 'BEGIN {
    printf "| %s | %d | %.4f | %.3f | %.2f | %.2f | %d | %d |\n", n, s, s/r, 8*s/r, r/1e6/ct, r/1e6/xt, cm/1024, xm/1024 }'
  rm -f "$archive"
}

echo "Input: $dir ($raw bytes), $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo
echo "| tool | bytes | ratio | bits/byte | create MB/s | extract MB/s | create peak MiB | extract peak MiB |"
echo "|---|---|---|---|---|---|---|---|"
measure "lza c -m zstd -l 9 (zstd 19)" "'$lza' c -m zstd -l 9 -T $threads -f '$work/a.lza' -C '$parent' '$base'" \
  "'$lza' x -T $threads -f '$work/a.lza' -C '$work/out'" "$work/a.lza"
measure "lza c -m zstd -l 6 (zstd 12)" "'$lza' c -m zstd -l 6 -T $threads -f '$work/a.lza' -C '$parent' '$base'" \
  "'$lza' x -T $threads -f '$work/a.lza' -C '$work/out'" "$work/a.lza"
measure "tar \| zstd -19 -T$threads" "tar -C '$parent' -cf - '$base' | zstd -q -19 -T$threads -o '$work/a.tar.zst'" \
  "zstd -q -dc '$work/a.tar.zst' | tar -C '$work/out' -xf -" "$work/a.tar.zst"
measure "tar \| zstd -12 -T$threads" "tar -C '$parent' -cf - '$base' | zstd -q -12 -T$threads -o '$work/a.tar.zst'" \
  "zstd -q -dc '$work/a.tar.zst' | tar -C '$work/out' -xf -" "$work/a.tar.zst"
measure "tar \| xz -9 -T$threads" "tar -C '$parent' -cf - '$base' | xz -9 -T$threads > '$work/a.tar.xz'" \
  "xz -dc -T$threads '$work/a.tar.xz' | tar -C '$work/out' -xf -" "$work/a.tar.xz"
