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


def test_fad_cache_goes_to_the_env_folder_else_the_user_cache(tmp_path, capsys, monkeypatch):
    ref, evaluated = _folders(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAG_BENCH_CACHE", str(tmp_path / "env-cache"))
    assert main(["fad", "dsp-spectral", ref, evaluated]) == 0
    assert len(list((tmp_path / "env-cache" / "embeddings" / "dsp-spectral").rglob("*.npy"))) == 6
    assert not (tmp_path / ".sag-bench-cache").exists()
    monkeypatch.delenv("SAG_BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["fad", "dsp-spectral", ref, evaluated]) == 0
    assert len(list((tmp_path / "xdg" / "sag-bench" / "embeddings").rglob("*.npy"))) == 6
    capsys.readouterr()


@pytest.mark.parametrize("argv, suggestion", [
    (["runn", "tiny"], "did you mean run?"),
    (["listen", "serv", "x"], "did you mean serve?"),
])
def test_a_mistyped_command_gets_a_suggestion(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2 and suggestion in capsys.readouterr().err


@pytest.mark.parametrize("argv, suggestion", [
    (["run", "tiyn", "--dry-run"], "did you mean tiny?"),
    (["run", "tiny", "--dry-run", "--set", 'evaluation.embedders=["vgish"]'], "did you mean vggish?"),
    (["run", "tiny", "--dry-run", "--set", "systems.fastsag.backbones=['mert-v1-95']"], "did you mean mert-v1-95m?"),
    (["generate", "fastsagg", "--input", "x.wav", "--out", "y"], "did you mean fastsag"),
])
def test_a_mistyped_name_gets_a_suggestion(argv, suggestion, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and suggestion in error
