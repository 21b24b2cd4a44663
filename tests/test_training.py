"""The shared training loop: deterministic data order, exact resume, loss CSV/PNG, atomic checkpoints."""

from __future__ import annotations

import csv

import pytest
import torch

from sag_bench.training import (LoopSettings, batch_indices, load_checkpoint, save_checkpoint, step_seed,
                                train_loop)


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))


def _dataset() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    xs = torch.randn(10, 4, generator=generator)
    return [{"x": x, "y": x.sum(-1, keepdim=True)} for x in xs]


def _loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    noisy = batch["x"] + 0.1 * torch.randn_like(batch["x"])  # randomness that must resume exactly
    mse = torch.nn.functional.mse_loss(model.body(noisy), batch["y"])
    return {"loss": mse, "mse": mse}


def _settings(steps: int) -> LoopSettings:
    return LoopSettings(steps=steps, batch_size=3, lr=1e-2, seed=7, checkpoint_every=4, grad_clip=1.0, device="cpu")


def test_batch_indices_cover_each_epoch_once_and_depend_only_on_step():
    order = [i for step in range(5) for i in batch_indices(10, 4, step, seed=3)]  # 20 draws = 2 epochs
    assert sorted(order[:10]) == list(range(10)) and sorted(order[10:]) == list(range(10))
    assert order[:10] != order[10:]  # epochs are reshuffled
    assert batch_indices(10, 4, 3, seed=3) == order[12:16]
    assert batch_indices(10, 4, 3, seed=4) != order[12:16]
    assert step_seed(1, 2, 0) != step_seed(1, 2, 1) and step_seed(1, 2, 0) == step_seed(1, 2, 0)


def test_resume_is_bit_identical_and_logs_losses(tmp_path):
    straight = train_loop(_Toy(), _dataset(), _loss, _settings(12), tmp_path / "a", metadata={"kind": "toy"})
    with pytest.raises(FileExistsError, match="--resume"):
        train_loop(_Toy(), _dataset(), _loss, _settings(12), tmp_path / "a")
    train_loop(_Toy(), _dataset(), _loss, _settings(8), tmp_path / "b")  # "interrupted" after 8 steps
    resumed = train_loop(_Toy(), _dataset(), _loss, _settings(12), tmp_path / "b", resume=True)
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["step"] == b["step"] == 12 and a["metadata"] == {"kind": "toy"}
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    with open(resumed.loss_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(12))
    assert set(rows[0]) == {"step", "loss", "mse"}
    assert resumed.loss_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert resumed.last_losses["loss"] == pytest.approx(straight.last_losses["loss"], abs=0)


def test_training_lowers_the_loss(tmp_path):
    result = train_loop(_Toy(), _dataset(), _loss, _settings(60), tmp_path)
    with open(result.loss_csv, newline="") as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle)]
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])


def test_checkpoint_roundtrip_and_bad_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"step": 3, "w": torch.arange(4)})
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_warmup_is_linear_then_constant_and_optimizers_follow_settings():
    from sag_bench.training import LoopSettings, make_optimizer, warmup_factor

    assert [warmup_factor(step, 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    param = [torch.nn.Parameter(torch.zeros(2))]
    adamw = make_optimizer(param, LoopSettings(steps=1, batch_size=1, lr=3e-4, optimizer="adamw", betas=(0.9, 0.99),
                                               weight_decay=0.01))
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["betas"] == (0.9, 0.99) and adamw.defaults["weight_decay"] == 0.01
    with pytest.raises(ValueError, match="optimizer must be one of adam, adamw"):
        make_optimizer(param, LoopSettings(steps=1, batch_size=1, lr=1e-3, optimizer="sgd"))
