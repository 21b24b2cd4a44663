"""Storage primitives: atomic writes survive kill -9; the cache is keyed by content."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time

import numpy as np

from sag_bench import store

WRITER = r"""
import hashlib, os, sys
from sag_bench.store import atomic_write_bytes
target = sys.argv[1]
i = 0
while True:
    body = os.urandom(4_000_000)
    atomic_write_bytes(target, hashlib.sha256(body).digest() + body)
    i += 1
    print(i, flush=True)
"""


def _valid(path) -> bool:
    data = path.read_bytes()
    return hashlib.sha256(data[32:]).digest() == data[:32]


def test_kill_9_mid_write_never_leaves_a_half_written_file(tmp_path):
    target = tmp_path / "result.bin"
    for delay in (0.05, 0.3, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one complete write has happened
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _valid(target), f"half-written file after kill at {delay}s"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "result.bin"]
    assert all(p.name.endswith(".tmp") for p in leftovers)  # temp files are never read back as results


def test_write_json_round_trip_and_atomic_replace(tmp_path):
    path = store.write_json(tmp_path / "a" / "b.json", {"x": 1})
    store.write_json(path, {"x": 2})
    assert store.read_json(path) == {"x": 2}
    assert list(path.parent.iterdir()) == [path]


def test_content_cache_is_keyed_by_content_not_name(tmp_path):
    cache = store.ContentCache(tmp_path, "emb")
    audio = tmp_path / "clip.wav"
    audio.write_bytes(b"version one")
    calls = []

    def compute():
        calls.append(1)
        return np.full(3, len(calls), dtype=np.float32)

    first = cache.get_or_compute(store.sha256_file(audio), compute)
    again = cache.get_or_compute(store.sha256_file(audio), compute)
    audio.write_bytes(b"version two")  # regenerated under the same name
    changed = cache.get_or_compute(store.sha256_file(audio), compute)
    assert first.tolist() == again.tolist() == [1, 1, 1] and changed.tolist() == [2, 2, 2]
