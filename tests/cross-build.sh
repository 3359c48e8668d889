#!/usr/bin/env bash
# Determinism across builds (issue #3): the same input must give the same
# archive bytes from a baseline x86-64 build and a -C target-cpu=native
# build, on every kernel path each can run, and each build must extract the
# other's archive. Under qemu-x86_64 (if installed) the baseline binary is
# also run on emulated CPUs without AVX2 (Westmere) and without AVX-512
# (Haswell).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The baseline is the ordinary release build (target-cpu x86-64, the
# default), shared with `cargo test --release`; only native needs its own.
cargo build --release --quiet
RUSTFLAGS="-C target-cpu=native" cargo build --release --quiet --target-dir target/cpu-native
declare -A bin=([x86-64]=target/release/lza [native]=target/cpu-native/release/lza)
mkdir -p "$work/in"
cp format-spec.md testdata/example/notes/* "$work/in/"
touch -d 2020-01-01 "$work/in" "$work/in"/*
ref=""
run() { # NAME CMD...
  local name=$1; shift
  "$@" c -f "$work/$name.lza" -C "$work" in
  if [ -z "$ref" ]; then ref=$name; else cmp "$work/$ref.lza" "$work/$name.lza"; fi
  rm -rf "$work/out" && "$@" x -f "$work/$ref.lza" -C "$work/out" && diff -r "$work/in" "$work/out/in"
  echo "same archive: $name"
}
for cpu in x86-64 native; do
  b=${bin[$cpu]}
  for k in portable avx2 avx512; do
    if LZA_KERNEL=$k "$b" c -f "$work/probe.lza" -C "$work" in 2>/dev/null; then
      rm -f "$work/probe.lza"
      run "$cpu-$k" env LZA_KERNEL=$k "$b"
    else
      rm -f "$work/probe.lza"; echo "skip: $cpu-$k (kernel not available)"
    fi
  done
done
if command -v qemu-x86_64 >/dev/null; then
  for qcpu in Westmere Haswell; do
    run "qemu-$qcpu" qemu-x86_64 -cpu "$qcpu" target/release/lza
  done
else
  echo "skip: qemu-x86_64 not installed (apt-get install qemu-user)"
fi
# aarch64 (opt-in: a cross build takes about 6 minutes on 2 cores). Needs
# `rustup target add aarch64-unknown-linux-gnu` and Debian's
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user.
if [ "${LZA_CROSS_AARCH64:-0}" = 1 ]; then
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    cargo build --release --quiet --target aarch64-unknown-linux-gnu
  run aarch64 qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/lza
fi
echo "cross-build determinism: ok"
