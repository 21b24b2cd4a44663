"""``sag-bench weights SPEC``: each weight once, with its command and landing place, present or missing."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants

from sag_bench.cli import main

SPEC = """
name = "needs"
table = "table1"
[data]
name = "musdb18"
dir = "{data}"
build = {{ protocol = "singsong" }}
[protocol]
degrade = "bigvgan-24k-100band"
[evaluation]
embedders = ["MERT-v1-95M-7", "MERT-v1-95M-4", "dsp-spectral"]
[[systems]]
name = "fastsag"
checkpoint = "{ckpt}"
backbones = ["mert-v1-95m", "bigvgan-24k-100band"]
[[systems]]
name = "groundtruth"
"""


def _run(spec: Path, capsys) -> tuple[int, str]:
    code = main(["weights", str(spec)])
    return code, capsys.readouterr().out


def test_weights_lists_each_once_and_sees_the_hub_cache(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    ckpt = tmp_path / "fastsag.pt"
    spec = tmp_path / "needs.toml"
    spec.write_text(SPEC.format(data=tmp_path / "musdb", ckpt=ckpt))
    code, out = _run(spec, capsys)
    assert code == 1
    # MERT serves two systems' backbone and two FAD layers: one line, one command.
    assert out.count("get: hf download m-a-p/MERT-v1-95M\n") == 1
    assert out.count("get: hf download nvidia/bigvgan_24khz_100band\n") == 1
    assert "huggingface-cli" not in out
    assert f"at:  {cache / 'models--m-a-p--MERT-v1-95M'}" in out
    assert f"--protocol singsong --out {tmp_path / 'musdb'}" in out and "--protocol fastsag --out" in out
    assert "--root $MUSDB_PATH" in out and "sharepoint.com" in out
    assert "0 present, 5 missing" in out

    snapshot = cache / "models--m-a-p--MERT-v1-95M" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    ckpt.write_bytes(b"weights")
    code, out = _run(spec, capsys)
    assert "[ok] Hugging Face m-a-p/MERT-v1-95M" in out and "[ok] checkpoint of fastsag" in out
    assert "[MISSING] Hugging Face nvidia/bigvgan_24khz_100band" in out and "2 present, 3 missing" in out


def test_weights_of_the_offline_spec_are_all_present(capsys):
    code, out = _run(Path("tiny"), capsys)
    assert code == 0 and "0 missing" in out
