"""Durable ratings: SQLite in WAL mode with full fsync, one transaction per answer.

A rating is acknowledged only after its transaction committed, so a ``kill -9`` (or power loss) of the server
after the acknowledgement cannot lose it. (rater, item) is the primary key: a rater answers an item once; the
identical answer sent again is accepted as a no-op (idempotent re-submission), a different one is a conflict.

The store also guards against the database file going away under it: every read and write first checks that the
path still names the file it opened (same device and inode), and a write is acknowledged only when that still
holds after the commit. Once tokens have been issued, a marker file next to the database records it, so a
restart on a missing or empty database is refused instead of silently starting a new study.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sag_bench.store import atomic_write_text, sha256_bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL UNIQUE, token_sha256 TEXT NOT NULL, external_id TEXT,
    user_agent TEXT, items TEXT NOT NULL, created REAL NOT NULL, headphone_correct INTEGER,
    headphone_total INTEGER, completed REAL);
CREATE TABLE IF NOT EXISTS ratings (
    rater_id TEXT NOT NULL REFERENCES raters(id), item_id TEXT NOT NULL, score INTEGER NOT NULL
    CHECK (score BETWEEN 1 AND 5), comment TEXT NOT NULL DEFAULT '', listen_seconds REAL, plays INTEGER,
    position INTEGER NOT NULL, created REAL NOT NULL, PRIMARY KEY (rater_id, item_id));
CREATE UNIQUE INDEX IF NOT EXISTS raters_external_id ON raters(external_id) WHERE external_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS rejection_counts (
    status INTEGER NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, first REAL NOT NULL, last REAL NOT NULL,
    PRIMARY KEY (status, reason));
"""
# Written next to the database when the first token is issued; its presence means raters hold sessions.
ISSUED_MARKER_SUFFIX = ".tokens-issued"


class StoreError(RuntimeError):
    """The database cannot be used (unopenable, or replaced/deleted while the server runs); one-line reason."""


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


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class RatingStore:
    """All reads and writes of ``ratings.sqlite``; safe to share between the server's worker threads.

    Refuses (:class:`StoreError`) to open a missing or empty database once tokens were issued, unless
    ``allow_empty``; raises :class:`StoreError` on any access after the file was deleted or replaced.
    """

    def __init__(self, path: str | Path, allow_empty: bool = False) -> None:
        self.path = Path(path)
        self.marker = self.path.with_name(self.path.name + ISSUED_MARKER_SUFFIX)
        self._lock = threading.Lock()
        existed = self.path.is_file()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            raters = self._db.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot open the ratings database ({error}; is the folder writable?)") \
                from None
        if self.marker.exists() and raters == 0 and not allow_empty:
            self._db.close()
            if not existed:
                for suffix in ("", "-wal", "-shm"):
                    self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            raise StoreError(f"{self.path}: {'missing' if not existed else 'empty'} but this study has issued "
                             f"sessions before ({self.marker.name}); restore the database, or start over on purpose "
                             "with --allow-empty-database")
        self._identity = _identity(self.path)

    def close(self) -> None:
        """Close the connection (checkpoints the WAL)."""
        with self._lock:
            self._db.close()

    def check(self) -> None:
        """Raise :class:`StoreError` when the database file was deleted or replaced since it was opened."""
        if _identity(self.path) != self._identity:
            raise StoreError(f"{self.path}: the database file was deleted or replaced while the server ran; "
                             "refusing to read or store ratings (restore it and restart)")

    def _read(self, query: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            self.check()
            return self._db.execute(query, parameters).fetchall()

    def _write(self, action: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self.check()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = action(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.check()  # committed into a file that is still the study's database, or not acknowledged
            return result

    def create_rater(self, assign: Callable[[int], list[str]], token_for: Callable[[str], str],
                     external_id: str | None = None, user_agent: str | None = None) -> tuple[Rater, bool]:
        """The session of ``external_id`` when it has one, else a new rater (fresh UUID; ``assign(index)`` gives
        the items, ``token_for(rater_id)`` the secret token whose hash is kept). Returns (rater, created)."""
        rater_id = str(uuid.uuid4())

        def insert(db: sqlite3.Connection) -> str | None:
            if external_id is not None:
                known = db.execute("SELECT id FROM raters WHERE external_id = ?", (external_id,)).fetchone()
                if known is not None:
                    return known[0]
            index = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM raters").fetchone()[0]
            db.execute("INSERT INTO raters (id, idx, token_sha256, external_id, user_agent, items, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (rater_id, index, sha256_bytes(token_for(rater_id).encode()),
                                                       external_id, user_agent, json.dumps(assign(index)),
                                                       time.time()))
            return None

        if not self.marker.exists():  # before any token can be acknowledged
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            atomic_write_text(self.marker, f"sessions issued since {since}\n")
        known = self._write(insert)
        rater = self.rater(known or rater_id)
        if rater is None:
            raise StoreError(f"{self.path}: rater {known or rater_id} vanished right after it was stored")
        return rater, known is None

    def rater(self, rater_id: str) -> Rater | None:
        """The rater with this id, or None."""
        return self._rater_where("id", rater_id)

    def rater_by_external_id(self, external_id: str) -> Rater | None:
        """The rater who signed up with this crowd-platform id, or None."""
        return self._rater_where("external_id", external_id)

    def rater_count(self) -> int:
        """How many sessions were handed out."""
        return self._read("SELECT COUNT(*) FROM raters")[0][0]

    def _rater_where(self, column: str, value: str) -> Rater | None:
        rows = self._read(f"SELECT * FROM raters WHERE {column} = ?", (value,))
        if not rows:
            return None
        row = rows[0]
        headphone = None if row["headphone_total"] is None else (row["headphone_correct"], row["headphone_total"])
        return Rater(id=row["id"], index=row["idx"], items=json.loads(row["items"]), external_id=row["external_id"],
                     headphone=headphone, completed=row["completed"], token_sha256=row["token_sha256"])

    def answers(self, rater_id: str) -> dict[str, int]:
        """Item id -> score for everything this rater has answered."""
        return {row[0]: row[1] for row in self._read("SELECT item_id, score FROM ratings WHERE rater_id = ?",
                                                    (rater_id,))}

    def unheard(self, rater_id: str) -> int:
        """How many of this rater's answers carry no evidence of a full play (plays missing or 0)."""
        return self._read("SELECT COUNT(*) FROM ratings WHERE rater_id = ? AND COALESCE(plays, 0) < 1",
                          (rater_id,))[0][0]

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

    def set_headphone(self, rater_id: str, correct: int, total: int) -> tuple[int, int]:
        """Record the rater's headphone-check result; the first one counts and is returned (correct, total)."""
        def update(db: sqlite3.Connection) -> tuple[int, int]:
            db.execute("UPDATE raters SET headphone_correct = ?, headphone_total = ? WHERE id = ? "
                       "AND headphone_total IS NULL", (correct, total, rater_id))
            row = db.execute("SELECT headphone_correct, headphone_total FROM raters WHERE id = ?",
                             (rater_id,)).fetchone()
            return row[0], row[1]

        return self._write(update)

    def mark_complete(self, rater_id: str) -> None:
        """Record when the rater finished (the first time counts)."""
        self._write(lambda db: db.execute("UPDATE raters SET completed = ? WHERE id = ? AND completed IS NULL",
                                          (time.time(), rater_id)))

    def add_rejection_counts(self, counts: dict[tuple[int, str], tuple[int, float, float]]) -> None:
        """Add refused-request counts ``{(status, reason): (count, first, last)}`` in one transaction."""
        def upsert(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO rejection_counts (status, reason, count, first, last) VALUES (?, ?, ?, ?, ?) "
                           "ON CONFLICT (status, reason) DO UPDATE SET count = count + excluded.count, "
                           "last = excluded.last", [(s, r, c, f, l) for (s, r), (c, f, l) in counts.items()])

        self._write(upsert)

    def _rows(self, query: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self._read(query)]

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
        """Refused requests counted by (status, reason), most frequent first."""
        return self._rows("SELECT * FROM rejection_counts ORDER BY count DESC, status, reason")
