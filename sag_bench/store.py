"""Results store: atomic writes, content hashes, a content-addressed cache, and run directories with manifests.

Every file is written to a temporary sibling, flushed and fsynced, then renamed over the target, so a reader sees
either the old file or the new one, never half of one, even after ``kill -9`` mid-write.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import numpy as np

RECORDED_PACKAGES = ("sag-bench", "torch", "torchaudio", "numpy", "transformers", "fadtk", "demucs", "bigvgan",
                     "encodec", "x-transformers", "scipy", "pandas")


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


def package_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that determine results."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with ``-dirty`` when the tree has changes), or None outside a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_description(device: str = "cpu") -> dict[str, Any]:
    """What a result depends on about the machine: device name, threads, platform."""
    import torch

    info: dict[str, Any] = {"device": device, "threads": torch.get_num_threads(), "platform": platform.platform(),
                            "processor": platform.processor() or platform.machine()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


@dataclass
class RunDir:
    """A run directory ``results/<run>/`` with its ``manifest.json``."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, or an empty dict for a new run."""
        return read_json(self.manifest_path) if self.manifest_path.is_file() else {}

    def write_manifest(self, spec: dict[str, Any], seeds: dict[str, int], device: str = "cpu",
                       **extra: Any) -> dict[str, Any]:
        """Record spec, git commit, package versions, device and seeds (plus ``extra``, e.g. backbones)."""
        manifest = {**self.read_manifest(), "spec": spec, "seeds": seeds, "git_commit": git_commit(),
                    "packages": package_versions(), "device": device_description(device),
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
        write_json(self.manifest_path, manifest)
        return manifest
