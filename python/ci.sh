#!/usr/bin/env bash
# CI for the Python package: build the abi3 wheel with maturin (in the main
# target directory, so lza's own build is shared with `cargo test
# --release`), install it into a fresh venv with the pinned dask and
# pytest, and run python/tests (a bytes round trip, create/list/extract,
# bad indexes, and a distributed round trip on a 2-worker LocalCluster).
# Prints the seconds it took.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
start=$(date +%s)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python3 -m venv "$tmp/build"
"$tmp/build/bin/pip" install -q --disable-pip-version-check -r "$root/python/requirements-build.txt"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" \
    "$tmp/build/bin/maturin" build --release --quiet -m "$root/python/Cargo.toml" --out "$tmp/wheels"
built=$(date +%s)

python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check \
    -r "$root/python/requirements-ci.txt" "$tmp"/wheels/lza-*.whl
# From a directory outside the source tree: the installed wheel is tested.
cd "$tmp"
"$tmp/venv/bin/python" -c "import lza; d = b'lza ' * 1000; assert lza.decompress(lza.compress(d)) == d"
"$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider --basetemp="$tmp/pytest" "$root/python/tests"
end=$(date +%s)
echo "python package: wheel built in $((built - start)) s, venv and tests $((end - built)) s" \
    "($(du -k "$tmp"/wheels/lza-*.whl | cut -f1) KiB wheel)"
