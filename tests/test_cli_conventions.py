"""CLI conventions researchers know: ``fad MODEL BASELINE EVAL`` as in fadtk (``--embedder`` kept), ``--version``."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from sag_bench.audio import save_audio
from sag_bench.cli import main


def _folders(root: Path) -> tuple[str, str]:
    t = np.arange(24_000) / 24_000
    for folder, shift in (("ref", 0.0), ("eval", 50.0)):
        for i in range(3):
            save_audio(root / folder / f"c{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 35 * i + shift) * t))
    return str(root / "ref"), str(root / "eval")


def test_fad_takes_fadtk_order_and_the_embedder_option_alike(tmp_path, capsys):
    ref, evaluated = _folders(tmp_path)
    cache = ["--cache", str(tmp_path / "cache"), "--json"]
    assert main(["fad", "dsp-spectral", ref, evaluated, *cache]) == 0
    positional = json.loads(capsys.readouterr().out)
    assert main(["fad", "--embedder", "dsp-spectral", ref, evaluated, *cache]) == 0
    option = json.loads(capsys.readouterr().out)
    assert positional["embedder"] == option["embedder"] == "dsp-spectral"
    assert positional["score"] == option["score"] > 0


def test_fad_with_a_wrong_argument_count_is_one_line(tmp_path, capsys):
    ref, _ = _folders(tmp_path)
    assert main(["fad", "dsp-spectral", ref]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "MODEL BASELINE EVAL" in error


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"sag-bench {version('sag-bench')}"
