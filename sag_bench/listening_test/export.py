"""Ratings joined with what each item is (system, clip, gold kind): the table that is exported and analysed."""

from __future__ import annotations

import csv
import io
from typing import Any

from sag_bench.listening_test.db import RatingStore
from sag_bench.listening_test.study import Study

# Free text typed by raters; a leading formula character is neutralised so spreadsheets do not execute it.
_FREE_TEXT = ("comment", "external_id")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = ("rater_id", "rater_index", "external_id", "item_id", "kind", "system", "clip", "expected_min",
           "expected_max", "score", "comment", "listen_seconds", "plays", "position", "created")


def rating_rows(study: Study, store: RatingStore) -> list[dict[str, Any]]:
    """One dict per stored rating with the item's kind, system, clip and expected range (gold items)."""
    rows = []
    for rating in store.ratings():
        item = study.items[rating["item_id"]]
        low, high = item.expected if item.expected else (None, None)
        rows.append({**rating, "kind": item.kind, "system": item.system, "clip": item.clip,
                     "expected_min": low, "expected_max": high})
    return [{column: row[column] for column in COLUMNS} for row in rows]


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text with a header line (columns in :data:`COLUMNS` order), safe to open in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "'" + value if key in _FREE_TEXT and isinstance(value, str)
                         and value.startswith(_FORMULA_START) else value for key, value in row.items()})
    return buffer.getvalue()
