"""Registry: built-ins and out-of-tree plugins are found through entry points; unknown names list known ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sag_bench import registry
from sag_bench.datasets.manifest import ClipDataset
from sag_bench.evaluation.fadtk_models import parse_fadtk_name

ROOT = Path(__file__).resolve().parents[1]
SAG_BENCH = str(Path(sys.executable).parent / "sag-bench")


def test_builtin_systems_are_registered_with_summaries():
    names = registry.names("systems")
    for expected in ("fastsag", "fastsag-interpolate", "fastsag-mel", "fastsag-semantic-mel", "fastsag-no-norm",
                     "singsong-sc", "singsong-scf", "randsong", "groundtruth"):
        assert expected in names
    summaries = dict(registry.listing("systems"))
    assert all(summaries[name] for name in names)


def test_unknown_name_lists_known_names():
    with pytest.raises(registry.UnknownComponentError) as caught:
        registry.entry("systems", "fastsagg")
    message = str(caught.value)
    assert "fastsagg" in message and "fastsag-interpolate" in message and "randsong" in message


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="kinds are"):
        registry.names("widgets")


def test_listing_imports_no_system_module():
    code = ("import sys; from sag_bench import registry; registry.listing('systems'); "
            "print(any(m.startswith(('torch', 'sag_bench.systems.fastsag')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_unknown_system_is_one_line_error():
    out = subprocess.run([sys.executable, "-m", "sag_bench.cli", "systems", "--kind", "nonsense"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def _install(plugin: Path, tmp_path: Path) -> dict[str, str]:
    """pip-install a copy of the plugin folder into a private target; the environment that sees it."""
    target = tmp_path / "site"
    source = shutil.copytree(plugin, tmp_path / "plugin-source")  # builds leave files in the source
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]  # this checkout first
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(target)])}


def test_out_of_tree_plugin_is_listed_after_pip_install(tmp_path):
    """`pip install examples/plugin` makes `sag-bench systems` list it, with no change to sag_bench."""
    env = _install(ROOT / "examples" / "plugin", tmp_path)
    before = subprocess.run([SAG_BENCH, "systems"], capture_output=True, text=True, check=True)
    after = subprocess.run([SAG_BENCH, "systems"], capture_output=True, text=True, check=True, env=env)
    assert "loudness-noise" not in before.stdout
    line = next(line for line in after.stdout.splitlines() if line.startswith("loudness-noise"))
    assert "toy baseline" in line.lower()
    code = ("import torch; from sag_bench import registry; s = registry.build('systems', 'loudness-noise'); "
            "v = torch.zeros(1, 24000); v[:, 12000:] = 0.5; a = s.generate(v, seed=1); "
            "print(a.shape[-1], float(a[:, :12000].abs().max()), float(a[:, 12000:].abs().mean()) > 0.05)")
    built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert built.stdout.split() == ["24000", "0.0", "True"]


TRAINABLE_PLUGIN = {
    "pyproject.toml": """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "sag-level-tone"
version = "0.0.1"

[project.entry-points."sag_bench.systems"]
level-tone = "sag_level_tone:ENTRY"

[tool.setuptools]
packages = ["sag_level_tone"]
""",
    "sag_level_tone/__init__.py": '''
"""Throw-away trainable system: a 110 Hz tone at the accompaniment level learnt from the training clips."""

import json
from pathlib import Path

import numpy as np
import torch

from sag_bench.datasets.manifest import ClipDataset
from sag_bench.registry import Entry
from sag_bench.systems.base import System

ENTRY = Entry("level-tone", "Toy: a tone at the learnt accompaniment level", "sag_level_tone:LevelTone",
              trainer="sag_level_tone:train")


def train(request):
    dataset = ClipDataset(request.data)
    records = dataset.records("train")[: request.steps or None]
    rms = float(np.sqrt(np.mean([np.mean(dataset.load(r).accompaniment ** 2) for r in records])))
    request.out.mkdir(parents=True, exist_ok=True)
    (request.out / "level.json").write_text(json.dumps({"rms": rms, "clips": len(records), "seed": request.seed}))
    return [f"learnt rms {rms:.6f} from {len(records)} clips"]


class LevelTone(System):
    """Toy: a tone at the learnt accompaniment level."""

    name = "level-tone"

    def load(self, device="cpu"):
        self.rms = json.loads((Path(self.checkpoint) / "level.json").read_text())["rms"]

    def generate(self, vocals, seed, clip_ids=None):
        t = torch.arange(vocals.shape[-1]) / self.sample_rate
        return (self.rms * np.sqrt(2) * torch.sin(2 * torch.pi * 110 * t)).expand_as(vocals).clone()
''',
}


def test_plugin_system_with_a_trainer_trains_through_sag_bench_train(tmp_path, dataset_builder):
    """A plugin entry naming a trainer is trained by `sag-bench train`, and its trained checkpoint generates."""
    plugin = tmp_path / "level-tone"
    for name, text in TRAINABLE_PLUGIN.items():
        (plugin / name).parent.mkdir(parents=True, exist_ok=True)
        (plugin / name).write_text(text.lstrip())
    env = _install(plugin, tmp_path)
    data = dataset_builder(tmp_path / "data", songs=4, clips_per_song=1, seconds=1.0)
    out = tmp_path / "trained"
    done = subprocess.run([SAG_BENCH, "train", "level-tone", "--data", str(data), "--out", str(out), "--seed", "5"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    dataset = ClipDataset(data)
    train = dataset.records("train")
    expected = float(np.sqrt(np.mean([np.mean(dataset.load(r).accompaniment ** 2) for r in train])))
    learnt = json.loads((out / "level.json").read_text())
    assert learnt["clips"] == len(train) == 2 and learnt["seed"] == 5
    assert learnt["rms"] == pytest.approx(expected, rel=1e-6) and 0.1 < expected < 0.3
    assert f"learnt rms {expected:.6f} from 2 clips" in done.stdout
    code = ("import torch; from sag_bench import registry; s = registry.build('systems', 'level-tone', "
            f"checkpoint={str(out)!r}); s.load('cpu'); a = s.generate(torch.zeros(2, 24000), seed=0); "
            "print(float(a.pow(2).mean().sqrt()))")
    built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert float(built.stdout) == pytest.approx(expected, rel=1e-3), built.stderr[-2000:]


def test_train_rejects_unregistered_and_untrainable_names():
    unknown = subprocess.run([SAG_BENCH, "train", "singsong", "--data", "d", "--out", "o"], capture_output=True,
                             text=True)
    assert unknown.returncode == 2 and "unknown system 'singsong'; did you mean singsong-sc, singsong-scf" \
        in unknown.stderr
    untrainable = subprocess.run([SAG_BENCH, "train", "randsong", "--data", "d", "--out", "o"], capture_output=True,
                                 text=True)
    assert untrainable.returncode == 2 and "randsong' has no trainer" in untrainable.stderr
    assert "singsong-sc" in untrainable.stderr and "fastsag-no-norm" in untrainable.stderr


def test_fadtk_embedders_are_listed_lazily_and_any_fadtk_name_resolves():
    out = subprocess.run([SAG_BENCH, "systems", "--kind", "embedders"], capture_output=True, text=True, check=True)
    listed = {line.split()[0] for line in out.stdout.splitlines()}
    assert {"vggish", "MERT-v1-95M-7", "clap-laion-music", "dsp-spectral", "crepe-tiny"} <= listed
    code = ("import sys; from sag_bench import registry; registry.listing('embedders'); "
            "print(any(m.startswith(('fadtk', 'torch')) for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    from sag_bench.evaluation.catalog import EMBEDDERS

    ours = {entry.name for entry in EMBEDDERS.entries()}
    assert {"dsp-spectral", "crepe-tiny", "dsp-interval"} <= ours <= listed
    for name in listed - ours:
        assert parse_fadtk_name(name).name == name
    assert registry.entry("embedders", "MERT-v1-95M-3").kwargs == {"name": "MERT-v1-95M-3"}
    with pytest.raises(registry.UnknownComponentError, match="any fadtk model name"):
        registry.entry("embedders", "MERT-v9")
