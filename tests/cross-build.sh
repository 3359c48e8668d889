#!/usr/bin/env bash
# Determinism across builds: the same input must give the same
# archive bytes from a baseline x86-64 build and a -C target-cpu=native
# build, on every kernel path each can run, and each build must extract the
# other's archive. Under qemu-x86_64 (if installed) the baseline binary is
# also run on emulated CPUs without AVX2 (Westmere) and without AVX-512
# (Haswell). examples/kernel_check compares every kernel path's products and
# model payloads with the portable reference, natively and under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The baseline is the ordinary release build (target-cpu x86-64, the
# default), shared with `cargo test --release`; only native needs its own.
cargo build --release --quiet --bin lza --example kernel_check
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
  for k in portable avx2 avxvnni avx512 amx; do
    if LZA_KERNEL=$k "$b" c -f "$work/probe.lza" -C "$work" in 2>/dev/null; then
      rm -f "$work/probe.lza"
      run "$cpu-$k" env LZA_KERNEL=$k "$b"
    else
      rm -f "$work/probe.lza"; echo "skip: $cpu-$k (kernel not available)"
    fi
  done
done
target/release/examples/kernel_check
if command -v qemu-x86_64 >/dev/null; then
  for qcpu in Westmere Haswell; do
    run "qemu-$qcpu" qemu-x86_64 -cpu "$qcpu" target/release/lza
  done
  # the whole-model part takes minutes under emulation: not in CI's time
  if [ "${LZA_CROSS_SLOW:-0}" = 1 ]; then
    qemu-x86_64 -cpu Haswell target/release/examples/kernel_check
  fi
else
  echo "skip: qemu-x86_64 not installed (apt-get install qemu-user)"
fi
# aarch64 (opt-in: a cross build takes about 6 minutes on 2 cores). Needs
# `rustup target add aarch64-unknown-linux-gnu` and Debian's
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user. Emulated
# CPUs: max (dot product and I8MM: paths portable, dotprod, i8mm),
# cortex-a76 (dot product, no I8MM) and cortex-a57 (neither: portable only,
# and asking for dotprod must fail).
if [ "${LZA_CROSS_AARCH64:-0}" = 1 ]; then
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    cargo build --release --quiet --target aarch64-unknown-linux-gnu --bin lza --example kernel_check
  a64=target/aarch64-unknown-linux-gnu/release
  qa() { local cpu=$1; shift; qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "$cpu" "$@"; }
  for k in portable dotprod i8mm; do
    run "aarch64-max-$k" env LZA_KERNEL=$k qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max $a64/lza
  done
  run aarch64-cortex-a76 qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a76 $a64/lza
  run aarch64-cortex-a57 qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a57 $a64/lza
  if LZA_KERNEL=dotprod qa cortex-a57 $a64/lza c -f "$work/probe.lza" -C "$work" in 2>/dev/null; then
    echo "LZA_KERNEL=dotprod accepted on a CPU without the dot product"; exit 1
  fi
  rm -f "$work/probe.lza"
  for cpu in max cortex-a76 cortex-a57; do
    qa "$cpu" $a64/examples/kernel_check
  done
fi
echo "cross-build determinism: ok"
