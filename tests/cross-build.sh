#!/usr/bin/env bash
# Determinism across builds: the same input must give the same
# archive bytes from a baseline x86-64 build and a -C target-cpu=native
# build, on every kernel path each can run, and each build must extract the
# other's archive. Under qemu-x86_64 (if installed) the baseline binary is
# also run, on a smaller input, on emulated CPUs without AVX2 (Westmere)
# and without AVX-512 (Haswell). examples/kernel_check compares every
# kernel path's products and model payloads with the portable reference,
# natively (and under qemu with LZA_CROSS_SLOW=1).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The baseline is the ordinary release build (target-cpu x86-64, the
# default), shared with `cargo test --release`; only native needs its own,
# with the dependencies unoptimized (profile cross-native in Cargo.toml).
cargo build --release --quiet --bin lza --example kernel_check
RUSTFLAGS="-C target-cpu=native" cargo build --profile cross-native --quiet --bin lza \
  --target-dir target/cpu-native
declare -A bin=([x86-64]=target/release/lza [native]=target/cpu-native/cross-native/lza)
# The input: the spec (67 KB with the notes: chunks with the model, solid
# blocks, stored data) natively; under emulation, about 100 times slower
# (12 KiB of the spec took 0.2 s natively, 24 s under qemu's Haswell), the
# notes and the spec's first 4 KiB, still coded with the model.
mkdir -p "$work/full/in" "$work/small/in"
cp format-spec.md testdata/example/notes/* "$work/full/in/"
cp testdata/example/notes/* "$work/small/in/"
head -c 4096 format-spec.md > "$work/small/in/format-spec.md"
touch -d 2020-01-01 "$work"/*/in "$work"/*/in/*
declare -A ref=()
run() { # INPUT NAME CMD...: INPUT is full or small
  local set=$1 name=$2; shift 2
  local dir=$work/$set
  "$@" c -f "$dir/$name.lza" -C "$dir" in
  if [ -z "${ref[$set]:-}" ]; then ref[$set]=$name; else cmp "$dir/${ref[$set]}.lza" "$dir/$name.lza"; fi
  rm -rf "$dir/out" && "$@" x -f "$dir/${ref[$set]}.lza" -C "$dir/out" && diff -r "$dir/in" "$dir/out/in"
  echo "same archive ($set input): $name"
}
for cpu in x86-64 native; do
  b=${bin[$cpu]}
  for k in portable avx2 avxvnni avx512 amx; do
    if LZA_KERNEL=$k "$b" c -f "$work/probe.lza" -C "$work/small" in 2>/dev/null; then
      rm -f "$work/probe.lza"
      run full "$cpu-$k" env LZA_KERNEL=$k "$b"
      # the reference of the emulated runs' input
      [ "$cpu-$k" = x86-64-portable ] && run small "$cpu-$k" env LZA_KERNEL=$k "$b"
    else
      rm -f "$work/probe.lza"; echo "skip: $cpu-$k (kernel not available)"
    fi
  done
done
target/release/examples/kernel_check
if command -v qemu-x86_64 >/dev/null; then
  for qcpu in Westmere Haswell; do
    run small "qemu-$qcpu" qemu-x86_64 -cpu "$qcpu" target/release/lza
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
    run small "aarch64-max-$k" env LZA_KERNEL=$k qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max $a64/lza
  done
  run small aarch64-cortex-a76 qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a76 $a64/lza
  run small aarch64-cortex-a57 qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a57 $a64/lza
  if LZA_KERNEL=dotprod qa cortex-a57 $a64/lza c -f "$work/probe.lza" -C "$work/small" in 2>/dev/null; then
    echo "LZA_KERNEL=dotprod accepted on a CPU without the dot product"; exit 1
  fi
  rm -f "$work/probe.lza"
  for cpu in max cortex-a76 cortex-a57; do
    qa "$cpu" $a64/examples/kernel_check
  done
fi
echo "cross-build determinism: ok"
