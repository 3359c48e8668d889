#!/usr/bin/env bash
# Regenerate the fuzz seed corpora under fuzz/corpus/<target>/ (git-ignored).
#
# Seeds: every golden archive in testdata/golden/ (if present), plus archives
# made by the lza binary from small generated trees (always, so this runs in
# CI before the golden archives exist); for cm_chunk, the context-mixing
# payloads of such archives and a few texts. The roundtrip target takes
# structured input and needs no seeds. Usage: fuzz/make_seeds.sh  (from anywhere)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus"
cd "$root"

# The release build, which CI's `cargo test --release` has just made (a
# debug build of every dependency cost CI about three minutes).
cargo build --release --quiet --bin lza
lza="$root/target/release/lza"

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
        "$lza" c -f "$seeds/gen-$tree-$cs.lza" -C "$t/$tree" --chunk-size "$cs" -T 1 --index . 2>/dev/null
    done
done
# Solid blocks (format-spec 4a): small blocks, so that a tree makes
# several, with stored and zstd-coded file tables.
# (These and the archives above carry a trailing index, format-spec 13,
# whatever it costs, so the decode target also reads them through it.)
for tree in one mixed links deep; do
    "$lza" c -f "$seeds/gen-$tree-solid.lza" -C "$t/$tree" --block-size 1K --chunk-size 256 -T 1 -m zstd --index . 2>/dev/null
done
# A level-1 archive, so zstd payloads of another shape appear too.
"$lza" c -f "$seeds/gen-mixed-l1.lza" -C "$t/mixed" --chunk-size 256 -l 1 -T 1 .

# cm_chunk (input layout in fuzz_targets/cm_chunk.rs): every context-mixing
# payload of archives made with --method cm and fast, as decode inputs
# (0x00, raw_len as u16 LE, payload), and texts as round-trip inputs
# (0x80 | preset, text; 0xC0 | preset also damages the payload; 0x90 | k
# preset 6).
cm="$work/cm"
mkdir -p "$cm" "$t/prose"
cp README.md format-spec.md "$t/prose/"
cm_payloads() { # ARCHIVE PREFIX
    local a="$1" prefix="$2" size off=40 tag pl ll codec raw stored k=0
    size=$(stat -c %s "$a")
    u() { od -An -tu"$1" -j "$2" -N"$1" --endian=little "$a" | tr -d ' '; }
    while [ "$off" -lt "$size" ]; do
        tag=$(u 1 "$off")
        case "$tag" in
        1) # entry record: 28 fixed bytes (path_len at 24, link_len at 26), path, link, crc
            pl=$(u 2 $((off + 24)))
            ll=$(u 2 $((off + 26)))
            off=$((off + 28 + pl + ll + 4)) ;;
        2) # chunk frame: 24-byte header (codec at 1, raw_len at 4, stored_len at 8), payload
            codec=$(u 1 $((off + 1)))
            raw=$(u 4 $((off + 4)))
            stored=$(u 4 $((off + 8)))
            if [ "$codec" = 3 ] && [ "$raw" -lt 65536 ]; then
                k=$((k + 1))
                {
                    printf "\\x00\\x$(printf %02x $((raw & 255)))\\x$(printf %02x $((raw >> 8)))"
                    dd if="$a" iflag=skip_bytes,count_bytes skip=$((off + 24)) count="$stored" status=none
                } > "$prefix-$k.bin"
            fi
            off=$((off + 24 + stored)) ;;
        3) # solid block record: 40 fixed bytes (table_stored_len at 16), table, crc
            off=$((off + 40 + $(u 4 $((off + 16))) + 4)) ;;
        *) break ;;
        esac
    done
}
for tree in mixed big prose; do
    "$lza" c -f "$work/cm-$tree.lza" -C "$t/$tree" --method cm --chunk-size 8192 -T 1 --block-size 0 .
    cm_payloads "$work/cm-$tree.lza" "$cm/dec-cm-$tree"
    "$lza" c -f "$work/fast-$tree.lza" -C "$t/$tree" --method fast --chunk-size 30000 -T 1 --block-size 0 .
    cm_payloads "$work/fast-$tree.lza" "$cm/dec-fast-$tree"
done
for p in 0 1 2 3 4; do  # 3: preset 7, 4: preset 9
    printf "\\x8$p" > "$cm/rt-$p-empty.bin"
    { printf "\\xc$p"; cat "$t/mixed/d/text.txt"; } > "$cm/rt-$p-text.bin"
    { printf "\\x8$p"; head -c 6000 format-spec.md; } > "$cm/rt-$p-spec.bin"
done
{ printf '\x81'; head -c 3000 "$t/big/numbers.txt"; } > "$cm/rt-1-numbers.bin"
{ printf '\x80'; cat "$t/mixed/d/e/random.bin"; } > "$cm/rt-0-random.bin"
# preset 6 (16-bit image): round trips (0x90 | k: width 2 + 37 k; 0x20 first
# byte 1; 0x40 damage), and a decode input with a valid image header
# (raw_len 4096, width 32, first byte 1) over arbitrary coded bytes
{ printf '\x95'; head -c 4000 "$t/big/numbers.txt"; } > "$cm/rt-6-numbers.bin"
{ printf '\xf2'; head -c 3000 "$t/mixed/d/e/random.bin"; } > "$cm/rt-6-random-damaged.bin"
{ printf '\x00\x00\x10\x06\x20\x00\x01'; head -c 64 "$t/mixed/d/e/random.bin"; } > "$cm/dec-6-header.bin"
mkdir -p "$corpus/cm_chunk"
cp "$cm"/* "$corpus/cm_chunk/"
echo "seeds: $(ls "$cm" | wc -l) inputs -> $corpus/cm_chunk"

for target in decode extract; do
    mkdir -p "$corpus/$target"
    cp "$seeds"/* "$corpus/$target/"
done
mkdir -p "$corpus/roundtrip"
echo "seeds: $(ls "$seeds" | wc -l) archives -> $corpus/{decode,extract}"
