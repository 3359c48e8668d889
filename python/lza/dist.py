"""Distributed create and extract of lza archives.

    python -m lza.dist create --engine dask --workers 16 -C /data -f out.lza tree
    python -m lza.dist extract --engine dask --workers 16 -f out.lza -C dest

create: the driver walks the inputs, cuts the file list into shards of about
--shard-size bytes (in walk order, so that similar neighbouring files share
a shard; hard-linked files stay together; every directory entry goes to the
first shard), and each worker archives its shard into an indexed version 2
archive (format-spec 12, 13) in the shard directory (a shared directory, or
an fsspec URL such as s3://bucket/tmp, written through a local temporary
file). The driver then concatenates the shards in order: the result is one
archive, and `cat` of the shards would be the same bytes.

extract: the driver reads the archive's indexes, splits the entries into
ranges of about equal bytes (lza.plan), each worker extracts its ranges
(all entries but directories) into the destination, and the driver then
extracts the directory entries, so that their modes and times are set after
every file is in place. The archive must be a path every worker can read;
an archive without an index is extracted by the driver alone.

Engines sit behind `Engine.map(fn, items)`: "dask" (a dask.distributed
LocalCluster, or a running scheduler with --address) and "local" (a process
pool, no dependency). Another engine (Ray, Spark) is one more subclass.
"""

import argparse
import os
import shutil
import stat
import sys
import tempfile
import time

import lza


class Engine:
    """Runs a function over items on workers, results in item order."""

    def map(self, fn, items):
        raise NotImplementedError

    def close(self):
        pass


class LocalEngine(Engine):
    """A process pool of `workers` processes."""

    def __init__(self, workers):
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=workers)

    def map(self, fn, items):
        return [f.result() for f in [self.pool.submit(fn, *it) for it in items]]

    def close(self):
        self.pool.shutdown()


class DaskEngine(Engine):
    """dask.distributed: a LocalCluster of `workers` single-threaded worker
    processes, or the scheduler at `address`."""

    def __init__(self, workers, address=None):
        from dask.distributed import Client, LocalCluster

        if address:
            self.cluster = None
            self.client = Client(address)
        else:
            self.cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            self.client = Client(self.cluster)

    def map(self, fn, items):
        futures = [self.client.submit(fn, *it, pure=False) for it in items]
        return self.client.gather(futures)

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


ENGINES = {"dask": DaskEngine, "local": lambda workers, address=None: LocalEngine(workers)}


def make_engine(name, workers, address=None):
    try:
        return ENGINES[name](workers, address=address)
    except KeyError:
        raise ValueError("unknown engine %r (one of %s)" % (name, ", ".join(ENGINES)))


def _is_url(p):
    return "://" in str(p)


def walk(root, inputs):
    """(directories, items) below `root` for `inputs` (relative paths):
    items are lists of (path, size, is_link) that must stay in one shard (a
    file, a symbolic link, or the files of one hard-link group)."""
    dirs, items, links = [], [], {}
    for top in inputs:
        todo = [top]
        while todo:
            rel = todo.pop()
            st = os.lstat(os.path.join(root, rel))
            if stat.S_ISDIR(st.st_mode):
                dirs.append(rel)
                names = sorted(os.listdir(os.path.join(root, rel)), reverse=True)
                todo.extend(os.path.join(rel, n) for n in names)
            elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    links[key].append((rel, 0, False))
                else:
                    links[key] = [(rel, st.st_size, False)]
                    items.append(links[key])
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                link = stat.S_ISLNK(st.st_mode)
                items.append([(rel, 0 if link else st.st_size, link)])
    return dirs, items


def shard_plan(inputs, dirs, items, shard_size):
    """Per shard, (roots to walk, archive paths to keep), each about
    `shard_size` bytes of input. The first shard walks the inputs whole and
    keeps every directory; the others walk their files, and the directory
    of each symbolic link (lza follows a link named as an input)."""
    shards, cur, size = [], [], 0
    for group in items:
        if cur and size >= shard_size:
            shards.append(cur)
            cur, size = [], 0
        cur.extend(group)
        size += sum(s for _, s, _ in group)
    if cur or not shards:
        shards.append(cur)
    out = []
    for i, group in enumerate(shards):
        keep = [p for p, _, _ in group]
        if i == 0:
            roots, keep = list(inputs), list(dirs) + keep
        else:
            roots = sorted({os.path.dirname(p) or p if link else p for p, _, link in group})
        out.append((roots, keep))
    return out


def _create_shard(i, roots, keep, root, shard_dir, method, level, threads):
    name = "shard-%06d.lza" % i
    if _is_url(shard_dir):
        import fsspec

        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            r = lza.create(local, roots, root=root, method=method, level=level, threads=threads,
                           index=True, only=keep, keep_model_hash=True)
            url = shard_dir.rstrip("/") + "/" + name
            with open(local, "rb") as src, fsspec.open(url, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return url, r["bytes"], r["entries"]
    out = os.path.join(shard_dir, name)
    r = lza.create(out, roots, root=root, method=method, level=level, threads=threads,
                   index=True, only=keep, keep_model_hash=True)
    return out, r["bytes"], r["entries"]


# Input bytes per shard unless told otherwise: a fixed size, so that the
# archive depends on the shard size and never on the number of workers (8 MiB
# is about a minute of one core's work with the default method).
DEFAULT_SHARD_SIZE = 8 << 20


def create(output, inputs, root=".", engine="dask", workers=2, shard_size=DEFAULT_SHARD_SIZE,
           method="default", level=6, threads=1, shard_dir=None, address=None,
           keep_shards=False):
    """Archive `inputs` (relative to `root`) into `output` on `workers`
    workers; returns a dict of what was done."""
    t0 = time.time()
    dirs, items = walk(root, inputs)
    total = sum(s for g in items for _, s, _ in g)
    shards = shard_plan(inputs, dirs, items, shard_size)
    own_dir = shard_dir is None
    if own_dir:
        parent = os.path.dirname(os.path.abspath(output)) if not _is_url(output) else None
        shard_dir = tempfile.mkdtemp(prefix=".lza-shards-", dir=parent)
    t1 = time.time()
    eng = make_engine(engine, workers, address)
    startup = time.time() - t1
    try:
        tasks = [(i, roots, keep, os.path.abspath(root), shard_dir, method, level, threads)
                 for i, (roots, keep) in enumerate(shards)]
        done = eng.map(_create_shard, tasks)
    finally:
        eng.close()
    parts = [p for p, _, _ in done]
    if not _is_url(output) and not any(_is_url(p) for p in parts):
        written = lza.concatenate(output, parts)
    else:
        import fsspec

        written = 0
        with fsspec.open(output, "wb") as dst:
            for p in parts:
                with fsspec.open(p, "rb") as src:
                    while True:
                        b = src.read(1 << 20)
                        if not b:
                            break
                        dst.write(b)
                        written += len(b)
    if not keep_shards:
        if own_dir:
            shutil.rmtree(shard_dir, ignore_errors=True)
        elif not _is_url(shard_dir):
            for p in parts:
                os.unlink(p)
    return {
        "shards": len(shards),
        "entries": sum(e for _, _, e in done),
        "input_bytes": total,
        "archive_bytes": written,
        "seconds": time.time() - t0,
        "startup_seconds": startup,
    }


def _extract_part(archive, dest, start, stop, threads):
    return lza.extract(archive, dest, part=(start, stop), threads=threads)


def extract(archive, dest, engine="dask", workers=2, threads=1, address=None, parts=None):
    """Extract `archive` into `dest` on `workers` workers; returns a dict of
    what was done."""
    t0 = time.time()
    if not lza.info(archive)["indexed"]:
        n = lza.extract(archive, dest, threads=threads * workers)
        return {"parts": 1, "entries": n, "seconds": time.time() - t0, "startup_seconds": 0.0}
    os.makedirs(dest, exist_ok=True)
    plan = lza.plan(archive, parts or 2 * workers)
    t1 = time.time()
    eng = make_engine(engine, workers, address)
    startup = time.time() - t1
    try:
        done = eng.map(_extract_part, [(os.path.abspath(archive), os.path.abspath(dest), s, e, threads)
                                        for s, e, _ in plan])
    finally:
        eng.close()
    n = sum(done) + lza.extract(archive, dest, directories=True, overwrite=True)
    return {"parts": len(plan), "entries": n, "seconds": time.time() - t0,
            "startup_seconds": startup}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lza.dist", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("create", "extract"):
        p = sub.add_parser(name)
        p.add_argument("--engine", default="dask", choices=sorted(ENGINES))
        p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
        p.add_argument("--threads", type=int, default=1, help="lza threads per worker")
        p.add_argument("--address", help="scheduler address of a running cluster")
        p.add_argument("-f", "--file", required=True, help="the archive")
        p.add_argument("-C", "--directory", default=".",
                       help="create: read inputs relative to it; extract: extract into it")
        p.add_argument("-v", "--verbose", action="store_true")
        if name == "create":
            p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                           help="input bytes per shard (default %(default)s)")
            p.add_argument("--shard-dir", help="where workers write shards (path or fsspec URL)")
            p.add_argument("-m", "--method", default="default")
            p.add_argument("-l", "--level", type=int, default=6)
            p.add_argument("inputs", nargs="+")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "create":
            r = create(a.file, a.inputs, root=a.directory, engine=a.engine, workers=a.workers,
                       shard_size=a.shard_size, method=a.method, level=a.level,
                       threads=a.threads, shard_dir=a.shard_dir, address=a.address)
        else:
            r = extract(a.file, a.directory, engine=a.engine, workers=a.workers,
                        threads=a.threads, address=a.address)
    except lza.LzaError as e:
        print("lza.dist: %s" % e, file=sys.stderr)
        return 1
    if a.verbose:
        print(" ".join("%s=%s" % kv for kv in sorted(r.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
