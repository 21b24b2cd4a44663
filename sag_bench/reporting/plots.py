"""The one matplotlib set-up of sag-bench: a file-only backend, and figures saved atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sag_bench.store import atomic_write_bytes


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``figure`` as PNG to ``path`` atomically and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
