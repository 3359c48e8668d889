#!/usr/bin/env python3
"""Prepare the training corpus for the device machine (which has no zstd).

Reads the six zstd files of ../shared/corpus (via the `zstd` CLI), drops the
`##### FILE: <name>` header lines (artifacts of the corpus layout that never
occur in real files), and writes for each file into .corpus/ (git-ignored):

  <name>.txt.xz      the documents' bytes, concatenated, headers removed
  <name>.docs.json   {"starts": [...], "names": [...], "bytes": N, "sha256": ...}

Document boundaries are kept so training can cut each document on the same
16 KiB grid the encoder uses for a file. Usage (from the repo root):

  python3 train/prep_data.py [--corpus ../shared/corpus] [--out .corpus]
"""
import argparse, hashlib, json, os, re, subprocess

NAMES = ["books-1", "books-2", "techdocs", "structured", "code", "reference"]
HEADER = re.compile(rb'(?:^|\n)##### FILE: ([^\n]*)\n\n')


def split_docs(raw):
    starts, names, parts, pos = [], [], [], 0
    matches = list(HEADER.finditer(raw))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(raw)
        body = raw[m.end():end]
        if i + 1 < len(matches):
            body += b"\n"  # the split consumed the document's last newline
        if not body:
            continue
        starts.append(pos)
        names.append(m.group(1).decode("utf-8", "replace"))
        parts.append(body)
        pos += len(body)
    return b"".join(parts), starts, names


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--corpus", default=os.path.join(here, "..", "..", "shared", "corpus"))
    ap.add_argument("--out", default=os.path.join(here, "..", ".corpus"))
    ap.add_argument("--xz-level", default="-6")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in NAMES:
        raw = subprocess.run(["zstd", "-dc", os.path.join(a.corpus, name + ".txt.zst")],
                             check=True, stdout=subprocess.PIPE).stdout
        text, starts, names = split_docs(raw)
        meta = {"source": name + ".txt.zst", "raw_bytes": len(raw), "bytes": len(text),
                "docs": len(starts), "sha256": hashlib.sha256(text).hexdigest(),
                "starts": starts, "names": names}
        xz = os.path.join(a.out, name + ".txt.xz")
        with open(xz, "wb") as f:
            subprocess.run(["xz", a.xz_level, "-T2", "-c"], input=text, check=True, stdout=f)
        with open(os.path.join(a.out, name + ".docs.json"), "w") as f:
            json.dump(meta, f)
        print(f"{name}: {len(raw)} raw -> {len(text)} bytes, {len(starts)} docs, "
              f"xz {os.path.getsize(xz)}")


if __name__ == "__main__":
    main()
