"""lza: a context-mixing archiver (Rust), from Python.

    import lza
    lza.create("a.lza", ["tree"], root="/data")   # indexed, concatenable
    lza.list("a.lza")                             # [{"path": ..., "type": ...}, ...]
    lza.extract("a.lza", "out")
    blob = lza.compress(b"text"); lza.decompress(blob) == b"text"

`python -m lza.dist create|extract --engine dask ...` runs create and
extract on several workers (see lza.dist). Errors are LzaError subclasses:
CorruptArchiveError, UnsafeEntryError, ModelError, LimitError, LzaIOError.
The default language model is inside the extension; nothing is downloaded.
"""

from ._lza import (
    CorruptArchiveError,
    LimitError,
    LzaError,
    LzaIOError,
    ModelError,
    UnsafeEntryError,
    compress,
    concatenate,
    create,
    decompress,
    extract,
    info,
    list,
    plan,
)

__all__ = [
    "CorruptArchiveError",
    "LimitError",
    "LzaError",
    "LzaIOError",
    "ModelError",
    "UnsafeEntryError",
    "compress",
    "concatenate",
    "create",
    "decompress",
    "extract",
    "info",
    "list",
    "plan",
]
