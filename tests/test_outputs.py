"""What a run leaves on disk is fit for sharing: every file readable by others (0644, folders 0755), and the demo
writes its report page."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from sag_bench.listening_test.study import SECRET_FILE

SAG_BENCH = str(Path(sys.executable).parent / "sag-bench")

SPEC = """
name = "modes"
seed = 1
batch_size = 2
[data]
name = "chorales"
dir = "{data}"
[evaluation]
embedders = ["dsp-spectral"]
coherence = true
bootstrap = 10
[rtf]
clips = 1
warmup = 0
[[systems]]
name = "groundtruth"
[[systems]]
name = "randsong"
"""


def test_demo_writes_a_report_and_every_file_is_readable_by_others(tmp_path, dataset_builder):
    data = dataset_builder(tmp_path / "data", songs=4, clips_per_song=1, seconds=4.0)
    spec = tmp_path / "modes.toml"
    spec.write_text(SPEC.format(data=data))
    out = tmp_path / "run"
    done = subprocess.run([SAG_BENCH, "demo", "--spec", str(spec), "--out", str(out)], capture_output=True,
                          text=True, preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "report.html").is_file() and "report.html" in done.stdout
    modes = {path.relative_to(out): stat.S_IMODE(path.stat().st_mode) for path in [out, *out.rglob("*")]}
    secret = [path for path in modes if path.name == SECRET_FILE]
    assert len(secret) == 1 and modes.pop(secret[0]) == 0o600  # the study's signing key stays private
    wrong = {str(path): oct(mode) for path, mode in modes.items()
             if mode != (0o755 if (out / path).is_dir() else 0o644)}
    assert len(modes) > 50 and wrong == {}
