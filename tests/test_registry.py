"""Registry: built-ins and out-of-tree plugins are found through entry points; unknown names list known ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sag_bench import registry

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


def test_out_of_tree_plugin_is_listed_after_pip_install(tmp_path):
    """`pip install examples/plugin` makes `sag-bench systems` list it, with no change to sag_bench."""
    target = tmp_path / "site"
    source = shutil.copytree(ROOT / "examples" / "plugin", tmp_path / "plugin")  # builds leave files in the source
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
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
