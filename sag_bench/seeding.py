"""Seeds derived from a run seed and identifiers, so randomness never depends on batching, order or resumption."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` (e.g. run seed and clip id, or seed, step and rank): the sha256 of their
    ``:``-joined text. Different parts give independent streams; equal parts give the same seed in any process."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
