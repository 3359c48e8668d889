"""Tests of the lza Python package: the wheel as installed (no source tree
on sys.path), the bindings and a distributed round trip on 2 workers."""

import os
import stat
import sys

import pytest

import lza
import lza.dist


def make_tree(root):
    """A small tree: text files, a binary file, an empty file and directory,
    a symbolic link, a hard link; fixed modes and mtimes."""
    os.makedirs(os.path.join(root, "docs", "deep"))
    os.makedirs(os.path.join(root, "empty"))
    words = b"the quick brown fox jumps over the lazy dog " * 50
    for i in range(12):
        with open(os.path.join(root, "docs", "f%02d.txt" % i), "wb") as f:
            f.write(words[: 500 + 300 * i] + b"%d\n" % i)
    with open(os.path.join(root, "docs", "deep", "bin"), "wb") as f:
        f.write(bytes((i * 7919) % 251 for i in range(5000)))
    open(os.path.join(root, "docs", "zero"), "wb").close()
    os.symlink("docs/f01.txt", os.path.join(root, "link"))
    os.link(os.path.join(root, "docs", "f02.txt"), os.path.join(root, "hard"))
    os.chmod(os.path.join(root, "docs", "f03.txt"), 0o600)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), ns=(1_600_000_000_123_456_789,) * 2,
                     follow_symlinks=False)
    os.utime(root, ns=(1_600_000_000_000_000_000,) * 2)


def snapshot(root):
    """Every path below root with type, mode, mtime and content or target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir",)
            else:
                with open(p, "rb") as f:
                    what = ("file", f.read())
            out[rel] = (what, stat.S_IMODE(st.st_mode) & 0o755, st.st_mtime_ns)
    return out


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(str(src / "t"))
    return src


def test_import_is_the_installed_wheel():
    assert "site-packages" in lza.__file__, lza.__file__
    assert issubclass(lza.CorruptArchiveError, lza.LzaError)
    assert issubclass(lza.UnsafeEntryError, lza.LzaError)
    assert issubclass(lza.LzaIOError, lza.LzaError)


def test_bytes_round_trip():
    data = b"hello, lza " * 100
    for method in ("zstd", "fast"):
        blob = lza.compress(data, method=method)
        assert blob[:4] == b"\x89LZA"
        assert len(blob) < len(data)
        assert lza.decompress(blob) == data
    assert lza.decompress(lza.compress(b"")) == b""
    with pytest.raises(ValueError):
        lza.compress(b"x", method="nope")


def test_corrupt_bytes_raise():
    blob = bytearray(lza.compress(b"some text " * 50, method="zstd"))
    with pytest.raises(lza.CorruptArchiveError, match="corrupt archive"):
        lza.decompress(bytes(blob[:-1]))
    blob[60] ^= 0xFF
    with pytest.raises(lza.CorruptArchiveError):
        lza.decompress(bytes(blob))
    with pytest.raises(lza.CorruptArchiveError, match="bad magic"):
        lza.decompress(b"not an archive at all, not at all, not at all")


def test_create_list_extract(tree, tmp_path):
    a = str(tmp_path / "a.lza")
    r = lza.create(a, ["t"], root=str(tree), method="zstd", threads=2)
    assert r["entries"] == 20 and r["bytes"] == os.path.getsize(a)
    info = lza.info(a)
    assert info["indexed"] and info["members"] == 1 and info["entries"] == 20
    listed = lza.list(a)
    assert listed == lza.list(a, use_index=False)
    kinds = {e["path"]: e["type"] for e in listed}
    assert kinds["t/link"] == "symlink" and kinds["t/empty"] == "dir"
    assert sorted(kinds.values()).count("hardlink") == 1
    out = tmp_path / "out"
    assert lza.extract(a, str(out)) == 20
    assert snapshot(str(out / "t")) == snapshot(str(tree / "t"))
    # Existing files are not replaced.
    with pytest.raises(lza.UnsafeEntryError, match="already exists"):
        lza.extract(a, str(out))
    with pytest.raises(lza.LzaIOError):
        lza.list(str(tmp_path / "missing.lza"))


def test_one_part_through_the_index(tree, tmp_path):
    a = str(tmp_path / "a.lza")
    lza.create(a, ["t"], root=str(tree), method="zstd")
    plan = lza.plan(a, 3)
    assert plan[0][0] == 0 and plan[-1][1] == 20 and len(plan) <= 3
    out = str(tmp_path / "out")
    for start, stop, _ in plan:
        lza.extract(a, out, part=(start, stop))
    lza.extract(a, out, directories=True, overwrite=True)
    assert snapshot(os.path.join(out, "t")) == snapshot(str(tree / "t"))


def test_single_files_from_solid_blocks(tree, tmp_path):
    a = str(tmp_path / "a.lza")
    lza.create(a, ["t"], root=str(tree), method="zstd")
    b = str(tmp_path / "b.lza")
    lza.create(b, ["t"], root=str(tree), method="zstd", block_size=0)
    listed = lza.list(a)
    key = lambda e: e["path"]
    assert sorted(listed, key=key) == sorted(lza.list(b), key=key)
    # Solid blocks make the archive smaller, and its order differs.
    assert os.path.getsize(a) < os.path.getsize(b)
    assert listed == lza.list(a, use_index=False)
    # Each file on its own through the index, some from inside a block.
    out = tmp_path / "out"
    for k, e in enumerate(listed):
        if e["type"] == "file":
            assert lza.extract(a, str(out), part=(k, k + 1)) == 1
            with open(out / e["path"], "rb") as got, open(tree / e["path"], "rb") as want:
                assert got.read() == want.read(), e["path"]


def test_bad_index_is_refused(tree, tmp_path):
    a = tmp_path / "a.lza"
    lza.create(str(a), ["t"], root=str(tree), method="zstd")
    b = bytearray(a.read_bytes())
    b[-30] ^= 1  # inside the index footer
    a.write_bytes(bytes(b))
    with pytest.raises(lza.CorruptArchiveError, match="index"):
        lza.plan(str(a), 2)
    with pytest.raises(lza.CorruptArchiveError):
        lza.extract(str(a), str(tmp_path / "out"))


def test_concatenated_shards_and_hostile_paths(tree, tmp_path):
    a, b, c = (str(tmp_path / n) for n in ("a.lza", "b.lza", "c.lza"))
    lza.create(a, ["t/docs"], root=str(tree), method="zstd")
    lza.create(b, ["t/link", "t/empty"], root=str(tree), method="zstd")
    lza.concatenate(c, [a, b])
    assert [e["path"] for e in lza.list(c)] == \
        [e["path"] for e in lza.list(a)] + [e["path"] for e in lza.list(b)]
    # cat gives the same archive; a shard twice repeats its paths.
    with open(c, "wb") as f:
        f.write(open(a, "rb").read() + open(a, "rb").read())
    with pytest.raises(lza.CorruptArchiveError, match="duplicate path"):
        lza.list(c)


@pytest.mark.parametrize("engine", ["dask"])
def test_distributed_round_trip(tree, tmp_path, engine):
    pytest.importorskip("dask.distributed")
    out = str(tmp_path / "d.lza")
    r = lza.dist.create(out, ["t"], root=str(tree), engine=engine, workers=2,
                        shard_size=4000, method="fast")
    assert r["shards"] >= 3 and r["entries"] == 20
    assert lza.info(out)["members"] == r["shards"]
    # The archive depends on the shard size, not on the workers or engine.
    one = str(tmp_path / "one.lza")
    lza.dist.create(one, ["t"], root=str(tree), engine="local", workers=1,
                    shard_size=4000, method="fast")
    assert open(one, "rb").read() == open(out, "rb").read()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".lza-shards-")]
    dest = str(tmp_path / "x")
    r = lza.dist.extract(out, dest, engine=engine, workers=2)
    assert r["entries"] == 20
    assert snapshot(os.path.join(dest, "t")) == snapshot(str(tree / "t"))
    # The command line, with the process-pool engine.
    assert lza.dist.main(["extract", "--engine", "local", "--workers", "2",
                          "-f", out, "-C", str(tmp_path / "y")]) == 0
    assert snapshot(str(tmp_path / "y" / "t")) == snapshot(str(tree / "t"))
