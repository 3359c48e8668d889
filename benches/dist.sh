#!/usr/bin/env bash
# Distributed create and extract with the Python package (lza.dist on a
# dask LocalCluster), for a machine with no internet and no Rust toolchain.
#
# Here (with internet), gather the wheels dask needs for the target Python:
#
#   benches/dist.sh prepare 3.11 DIR
#
# (build the lza wheel with `maturin build --release -m python/Cargo.toml`;
# it is abi3, one wheel for Python 3.8 and later). There, with python3 of
# that version:
#
#   benches/dist.sh run LZA_WHEEL DIR TREE [OUT]
#
# creates a venv (under OUT, default a mktemp -d), installs the wheels from
# DIR without an index, and measures on TREE (a directory):
#   - create and extract with 1, 4 and 16 workers (MB/s of input, and the
#     check that the extracted tree equals TREE: names, types, contents,
#     link targets, modes, mtimes),
#   - the ratio cost of sharding: archive size per shard size (1, 4, 16, 64
#     MiB and one shard), against one shard.
# WORKERS="1 4 16" and SHARDS="1 4 16 64 0" (MiB, fractions allowed, 0 = one
# shard) override
# the lists; SHARD_MIB (default 8) is the shard size of the worker runs,
# whose archives must come out identical; METHOD (default "default") the lza
# method. Pick a TREE of at least 16 x SHARD_MIB so that 16 workers have a
# shard each. Results go to
# stdout as a table and to OUT/dist.json.
set -euo pipefail

usage() {
    sed -n '2,25p' "$0" >&2
    exit 2
}

cmd="${1:-}"
case "$cmd" in
prepare)
    [ $# -eq 3 ] || usage
    pyver="$2"
    dir="$3"
    here="$(cd "$(dirname "$0")/.." && pwd)"
    mkdir -p "$dir"
    # Top-level pins only: pip resolves the rest for that Python version.
    reqs=$(grep -E '^(dask|distributed)==' "$here/python/requirements-ci.txt")
    # shellcheck disable=SC2086
    python3 -m pip download --quiet --python-version "$pyver" --only-binary=:all: \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --platform any -d "$dir" $reqs
    echo "wheels for Python $pyver in $dir: $(du -sh "$dir" | cut -f1)"
    ;;
run)
    [ $# -ge 4 ] && [ $# -le 5 ] || usage
    wheel="$(realpath "$2")"
    dir="$(realpath "$3")"
    tree="$(realpath "$4")"
    out="${5:-$(mktemp -d)}"
    mkdir -p "$out"
    out="$(realpath "$out")"
    python3 -m venv "$out/venv"
    "$out/venv/bin/pip" install --quiet --no-index --find-links "$dir" "$wheel" dask distributed
    echo "machine: $(lscpu | grep 'Model name' | sed 's/.*: *//'), $(nproc) CPUs"
    du -sh "$wheel" "$dir" | sed 's/^/bundle: /'
    cd "$out"
    # A file, not stdin: dask's worker processes start by spawn and import
    # the main module again.
    cat > "$out/dist_bench.py" <<'PY'
import hashlib, json, os, shutil, stat, sys
import lza, lza.dist


def snapshot(top):
    res = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                what = h.hexdigest()
            else:
                what = "dir"
            res[os.path.relpath(p, top)] = (what, stat.S_IMODE(st.st_mode) & 0o755, st.st_mtime_ns)
    return res


def main():
    tree, out = sys.argv[1], sys.argv[2]
    workers = [int(w) for w in os.environ["WORKERS"].split()]
    shards = [float(s) for s in os.environ["SHARDS"].split()]
    method = os.environ["METHOD"]
    shard_mib = float(os.environ["SHARD_MIB"])
    root, name = os.path.split(tree.rstrip("/"))

    want = snapshot(tree)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tree) for f in fs
               if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f)))
    print("tree %s: %d entries, %.1f MB, method %s" % (tree, len(want), size / 1e6, method))
    results = {"tree": tree, "bytes": size, "method": method, "runs": [], "shards": []}
    # MB/s of input bytes; in brackets without the cluster's start-up.
    print("%8s %20s %20s %12s %6s" % ("workers", "create MB/s", "extract MB/s", "archive", "ok"))
    for w in workers:
        arc = os.path.join(out, "w%d.lza" % w)
        c = lza.dist.create(arc, [name], root=root, engine="dask", workers=w, method=method,
                            shard_size=int(shard_mib * (1 << 20)))
        dest = os.path.join(out, "x%d" % w)
        shutil.rmtree(dest, ignore_errors=True)
        x = lza.dist.extract(arc, dest, engine="dask", workers=w)
        ok = snapshot(os.path.join(dest, name)) == want
        # The same shard size gives the same archive whatever the workers.
        ok = ok and (not results["runs"] or c["archive_bytes"] == results["runs"][0]["archive"])
        r = {"workers": w, "create_s": c["seconds"], "extract_s": x["seconds"],
             "create_startup_s": c["startup_seconds"], "extract_startup_s": x["startup_seconds"],
             "archive": c["archive_bytes"], "shards": c["shards"], "ok": ok}
        results["runs"].append(r)
        mbs = lambda d, t: "%.3f (%.3f)" % (size / 1e6 / d[t], size / 1e6 / max(1e-9, d[t] - d["startup_seconds"]))
        print("%8d %20s %20s %12d %6s" % (w, mbs(c, "seconds"), mbs(x, "seconds"), c["archive_bytes"], ok))
        shutil.rmtree(dest)
        os.unlink(arc)
    print("%10s %8s %12s %10s" % ("shard MiB", "shards", "archive", "vs one"))
    base = None
    for s in sorted(shards, key=lambda s: -s if s else -(1 << 40)):
        arc = os.path.join(out, "s.lza")
        c = lza.dist.create(arc, [name], root=root, engine="dask", workers=max(workers), method=method,
                            shard_size=int(s * (1 << 20)) if s else (1 << 62))
        base = base or c["archive_bytes"]
        results["shards"].append({"shard_mib": s, "shards": c["shards"], "archive": c["archive_bytes"]})
        print("%10s %8d %12d %+9.2f%%" % (s or "one", c["shards"], c["archive_bytes"],
                                          100.0 * (c["archive_bytes"] / base - 1)))
        os.unlink(arc)
    with open(os.path.join(out, "dist.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
PY
    WORKERS="${WORKERS:-1 4 16}" SHARDS="${SHARDS:-1 4 16 64 0}" METHOD="${METHOD:-default}" \
        SHARD_MIB="${SHARD_MIB:-8}" \
        "$out/venv/bin/python" "$out/dist_bench.py" "$tree" "$out"
    ;;
*)
    usage
    ;;
esac
