#!/usr/bin/env bash
# Regenerate the fuzz seed corpora under fuzz/corpus/<target>/ (git-ignored).
#
# Seeds: every golden archive in testdata/golden/ (if present), plus archives
# made by the lza binary from small generated trees (always, so this runs in
# CI before the golden archives exist). The roundtrip target takes structured
# input and needs no seeds. Usage: fuzz/make_seeds.sh  (from anywhere)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus"
cd "$root"

cargo build --quiet --bin lza
lza="$root/target/debug/lza"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seeds="$work/seeds"
mkdir -p "$seeds"

# Golden archives, whatever their layout.
if [ -d testdata/golden ]; then
    find testdata/golden -type f -name '*.lza' -size -1024k | while read -r f; do
        cp "$f" "$seeds/golden-$(echo "${f#testdata/golden/}" | tr '/' '_')"
    done
fi

# Small generated trees, each archived with tiny chunks so that every seed
# has several chunk frames (stored and zstd).
t="$work/trees"
mkdir -p "$t/empty" "$t/one" "$t/mixed/d/e" "$t/links/d" "$t/big" "$t/deep/a/b/c/d"
: > "$t/one/empty.txt"
printf 'hello world\n' > "$t/one/hello.txt"
printf 'the quick brown fox jumps over the lazy dog\n%.0s' $(seq 40) > "$t/mixed/d/text.txt"
# Deterministic incompressible bytes (stored chunks).
LC_ALL=C awk 'BEGIN { srand(1); for (i = 0; i < 300; i++) printf "%c", int(rand() * 256) }' > "$t/mixed/d/e/random.bin"
chmod 0640 "$t/mixed/d/text.txt"
chmod 0700 "$t/mixed/d/e"
printf 'target\n' > "$t/links/d/file"
ln -s d/file "$t/links/sym"
ln -s ../sym "$t/links/d/up"
ln -s missing "$t/links/dangling"
ln "$t/links/d/file" "$t/links/hard"
seq 1 2000 > "$t/big/numbers.txt"
printf 'x' > "$t/deep/a/b/c/d/leaf"

n=0
for tree in empty one mixed links big deep; do
    for cs in 64 1000 65536; do
        n=$((n + 1))
        "$lza" c -f "$seeds/gen-$tree-$cs.lza" -C "$t/$tree" --chunk-size "$cs" -T 1 . 2>/dev/null
    done
done
# A level-1 archive, so zstd payloads of another shape appear too.
"$lza" c -f "$seeds/gen-mixed-l1.lza" -C "$t/mixed" --chunk-size 256 -l 1 -T 1 .

for target in decode extract; do
    mkdir -p "$corpus/$target"
    cp "$seeds"/* "$corpus/$target/"
done
mkdir -p "$corpus/roundtrip"
echo "seeds: $(ls "$seeds" | wc -l) archives -> $corpus/{decode,extract}"
