"""Durable ratings: SQLite in WAL mode with full fsync, one transaction per answer.

A rating is acknowledged only after its transaction committed, so a ``kill -9`` (or power loss) of the server
after the acknowledgement cannot lose it. (rater, item) is the primary key: a rater answers an item once; the
identical answer sent again is accepted as a no-op (idempotent re-submission), a different one is a conflict.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sag_bench.store import sha256_bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL UNIQUE, token_sha256 TEXT NOT NULL, external_id TEXT,
    user_agent TEXT, items TEXT NOT NULL, created REAL NOT NULL, headphone_correct INTEGER,
    headphone_total INTEGER, completed REAL);
CREATE TABLE IF NOT EXISTS ratings (
    rater_id TEXT NOT NULL REFERENCES raters(id), item_id TEXT NOT NULL, score INTEGER NOT NULL
    CHECK (score BETWEEN 1 AND 5), comment TEXT NOT NULL DEFAULT '', listen_seconds REAL, plays INTEGER,
    position INTEGER NOT NULL, created REAL NOT NULL, PRIMARY KEY (rater_id, item_id));
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, client TEXT, method TEXT, path TEXT,
    status INTEGER NOT NULL, reason TEXT NOT NULL);
"""


class ConflictError(ValueError):
    """A rater sent a different answer for an item they already rated."""


class NotAssignedError(ValueError):
    """The item is not one of this rater's items."""


@dataclass(frozen=True)
class Rater:
    """A rater's session: their id, position in arrival order, item sequence and progress."""

    id: str
    index: int
    items: list[str]
    external_id: str | None
    headphone: tuple[int, int] | None
    completed: float | None
    token_sha256: str = field(repr=False, default="")

    def owns(self, token: str) -> bool:
        """True when ``token`` is the secret token issued to this rater (constant-time comparison)."""
        return hmac.compare_digest(self.token_sha256, sha256_bytes(token.encode()))


class RatingStore:
    """All reads and writes of ``ratings.sqlite``; safe to share between the server's worker threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the connection (checkpoints the WAL)."""
        with self._lock:
            self._db.close()

    def _write(self, action: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = action(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def create_rater(self, assign: Callable[[int], list[str]], external_id: str | None = None,
                     user_agent: str | None = None) -> tuple[Rater, str]:
        """A new rater with a fresh UUID and secret token; ``assign(index)`` gives their items. Returns (rater, token)."""
        rater_id, token = str(uuid.uuid4()), secrets.token_urlsafe(24)

        def insert(db: sqlite3.Connection) -> int:
            index = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM raters").fetchone()[0]
            db.execute("INSERT INTO raters (id, idx, token_sha256, external_id, user_agent, items, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (rater_id, index, sha256_bytes(token.encode()), external_id, user_agent,
                                                       json.dumps(assign(index)), time.time()))
            return index

        self._write(insert)
        return self.rater(rater_id), token

    def rater(self, rater_id: str) -> Rater | None:
        """The rater with this id, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM raters WHERE id = ?", (rater_id,)).fetchone()
        if row is None:
            return None
        headphone = None if row["headphone_total"] is None else (row["headphone_correct"], row["headphone_total"])
        return Rater(id=row["id"], index=row["idx"], items=json.loads(row["items"]), external_id=row["external_id"],
                     headphone=headphone, completed=row["completed"], token_sha256=row["token_sha256"])

    def answers(self, rater_id: str) -> dict[str, int]:
        """Item id -> score for everything this rater has answered."""
        with self._lock:
            rows = self._db.execute("SELECT item_id, score FROM ratings WHERE rater_id = ?", (rater_id,)).fetchall()
        return {row[0]: row[1] for row in rows}

    def add_rating(self, rater: Rater, item_id: str, score: int, comment: str = "",
                   listen_seconds: float | None = None, plays: int | None = None) -> tuple[bool, int]:
        """Store one answer durably; returns (True if new / False for an identical re-submission, answers so far).

        Raises :class:`NotAssignedError` for an item outside the rater's sequence and :class:`ConflictError`
        when the item already has a different answer from this rater.
        """
        if item_id not in rater.items:
            raise NotAssignedError(f"item {item_id} is not assigned to rater {rater.id}")

        def insert(db: sqlite3.Connection) -> tuple[bool, int]:
            old = db.execute("SELECT score, comment FROM ratings WHERE rater_id = ? AND item_id = ?",
                             (rater.id, item_id)).fetchone()
            if old is not None:
                if (old[0], old[1]) != (score, comment):
                    raise ConflictError(f"item {item_id} was already rated {old[0]} by this rater")
            else:
                db.execute("INSERT INTO ratings (rater_id, item_id, score, comment, listen_seconds, plays, "
                           "position, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (rater.id, item_id, score, comment, listen_seconds, plays, rater.items.index(item_id),
                            time.time()))
            answered = db.execute("SELECT COUNT(*) FROM ratings WHERE rater_id = ?", (rater.id,)).fetchone()[0]
            return old is None, answered

        return self._write(insert)

    def set_headphone(self, rater_id: str, correct: int, total: int) -> None:
        """Record the rater's headphone-check result (the first one counts)."""
        self._write(lambda db: db.execute(
            "UPDATE raters SET headphone_correct = ?, headphone_total = ? WHERE id = ? AND headphone_total IS NULL",
            (correct, total, rater_id)))

    def mark_complete(self, rater_id: str) -> None:
        """Record when the rater finished (the first time counts)."""
        self._write(lambda db: db.execute("UPDATE raters SET completed = ? WHERE id = ? AND completed IS NULL",
                                          (time.time(), rater_id)))

    def log_rejection(self, status: int, reason: str, client: str = "", method: str = "", path: str = "") -> None:
        """Keep a record of a refused request (status, reason, who, what)."""
        self._write(lambda db: db.execute(
            "INSERT INTO rejections (created, client, method, path, status, reason) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), client, method, path[:300], status, reason[:500])))

    def _rows(self, query: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._db.execute(query).fetchall()]

    def ratings(self) -> list[dict[str, Any]]:
        """Every rating with its rater's external id, in insertion order."""
        return self._rows("SELECT r.rater_id, t.idx AS rater_index, t.external_id, r.item_id, r.score, r.comment, "
                          "r.listen_seconds, r.plays, r.position, r.created FROM ratings r JOIN raters t "
                          "ON t.id = r.rater_id ORDER BY r.rowid")

    def raters(self) -> list[dict[str, Any]]:
        """Every rater (without token hashes), in arrival order."""
        return self._rows("SELECT id, idx, external_id, user_agent, created, headphone_correct, headphone_total, "
                          "completed, (SELECT COUNT(*) FROM ratings WHERE rater_id = raters.id) AS answered, "
                          "json_array_length(items) AS assigned FROM raters ORDER BY idx")

    def rejections(self) -> list[dict[str, Any]]:
        """Every refused request, oldest first."""
        return self._rows("SELECT * FROM rejections ORDER BY id")
