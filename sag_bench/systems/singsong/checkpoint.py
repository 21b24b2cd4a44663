"""A SingSong checkpoint directory: ``config.json``, ``tokenizer.pt`` and one ``<stage>.pt`` per trained stage.

Training writes into it stage by stage (``sag-bench train singsong --stage ... --out DIR``); ``singsong-sc`` needs
the semantic and coarse stages, ``singsong-scf`` all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sag_bench.errors import UserError
from sag_bench.store import read_json, write_json
from sag_bench.systems.singsong.config import SingSongConfig
from sag_bench.systems.singsong.stages import StageLM, stage_layout
from sag_bench.systems.singsong.tokenizer import TOKENIZER_FILE, SingSongTokenizer, load_tokenizer
from sag_bench.training import load_checkpoint, save_checkpoint

CONFIG_FILE = "config.json"


def window_frames(config: SingSongConfig, tokenizer: SingSongTokenizer, stage: str) -> int:
    """Codec frames per window of ``stage`` (paper: 750 / 300 / 150 for 10 / 4 / 2 s)."""
    seconds = config.stage(stage).window_seconds or config.window_seconds
    return round(seconds * tokenizer.codec.frame_rate)


def hop_frames(config: SingSongConfig, tokenizer: SingSongTokenizer, stage: str) -> int:
    """Codec frames between the starts of consecutive generated windows of ``stage``."""
    return max(1, round(config.stage(stage).window_hop * window_frames(config, tokenizer, stage)))


def build_stage(config: SingSongConfig, tokenizer: SingSongTokenizer, stage: str) -> StageLM:
    """A freshly initialised stage sized for ``tokenizer``'s vocabularies and the stage's window."""
    layout = stage_layout(stage, tokenizer.semantic_vocab, tokenizer.codebook_size, config.coarse_condition)
    return StageLM(layout, config.stage(stage), window_frames(config, tokenizer, stage))


def save_config(directory: str | Path, config: SingSongConfig) -> Path:
    """Write ``directory/config.json``."""
    return write_json(Path(directory) / CONFIG_FILE, config.to_dict())


def load_config(directory: str | Path) -> SingSongConfig:
    """Read ``directory/config.json``."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{path}: no such file; {Path(directory)} is not a SingSong checkpoint "
                        "(create one with `sag-bench train singsong --stage semantic --data DIR --out DIR`)")
    return SingSongConfig.from_dict(read_json(path))


def save_stage(directory: str | Path, stage: str, model: StageLM) -> Path:
    """Write the inference weights of one stage to ``directory/<stage>.pt`` atomically, as float16.

    Half precision halves the file (the tiny checkpoint must stay small); loading casts back to the model's
    float32 parameters. Resumable training state keeps full precision under ``runs/<stage>/``.
    """
    weights = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    return save_checkpoint(Path(directory) / f"{stage}.pt", {"stage": stage, "model": weights})


def load_stage(directory: str | Path, config: SingSongConfig, tokenizer: SingSongTokenizer, stage: str) -> StageLM:
    """The trained stage from ``directory/<stage>.pt`` (in eval mode, on the CPU)."""
    path = Path(directory) / f"{stage}.pt"
    if not path.is_file():
        raise UserError(f"{path}: no such file; train this stage with "
                        f"`sag-bench train singsong --stage {stage} --out {Path(directory)} --data DIR`")
    model = build_stage(config, tokenizer, stage)
    model.load_state_dict(load_checkpoint(path)["model"])
    return model.eval()


@dataclass
class SingSongBundle:
    """Everything generation needs: the configuration, the fitted tokenizer and the stage models."""

    config: SingSongConfig
    tokenizer: SingSongTokenizer
    models: dict[str, StageLM]

    def to(self, device: str | torch.device) -> "SingSongBundle":
        """Move tokenizer and models to ``device``."""
        self.tokenizer.to(device)
        for model in self.models.values():
            model.to(device)
        return self


def load_bundle(directory: str | Path, stages: tuple[str, ...]) -> SingSongBundle:
    """Config, tokenizer and the named stages of the checkpoint in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such SingSong checkpoint directory")
    config = load_config(directory)
    if not (directory / TOKENIZER_FILE).is_file():
        raise UserError(f"{directory / TOKENIZER_FILE}: no such file (training any stage fits and writes it)")
    tokenizer = load_tokenizer(directory, config)
    return SingSongBundle(config, tokenizer, {s: load_stage(directory, config, tokenizer, s) for s in stages})
