"""Storage primitives: atomic writes, JSON and arrays, content hashes, and a content-addressed cache.

The layout of a run folder belongs to :mod:`sag_bench.runs`.

Every file is written to a temporary sibling, flushed and fsynced, then renamed over the target, so a reader sees
either the old file or the new one, never half of one, even after ``kill -9`` mid-write. Files get the mode a plain
``open()`` would give them (0644 under the usual umask 022), not ``mkstemp``'s private 0600, so colleagues and web
servers can read results; folders are made 0755 the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, Callable

import numpy as np


@cache
def file_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask (0o666 & ~umask: 0644 for umask 022)."""
    umask = os.umask(0o022)  # reading the umask means setting it; restored at once (read once per process)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_array(path: str | Path, array: np.ndarray) -> Path:
    """Save a numpy array atomically as ``.npy``."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ContentCache:
    """Arrays cached under ``root/<namespace>/<key[:2]>/<key>.npy``, keyed by a content hash.

    A key must be derived from the content it describes (e.g. ``sha256_file(audio) + embedder name``), so
    regenerating a file under the same name can never return a stale value.
    """

    def __init__(self, root: str | Path, namespace: str) -> None:
        self.root = Path(root) / namespace

    def path(self, key: str) -> Path:
        """Where the value for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array, or None."""
        path = self.path(key)
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def put(self, key: str, value: np.ndarray) -> np.ndarray:
        """Store ``value`` under ``key`` and return it."""
        save_array(self.path(key), value)
        return value

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Cached value for ``key``, computing and storing it when absent."""
        cached = self.get(key)
        return cached if cached is not None else self.put(key, compute())
