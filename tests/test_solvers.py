"""Fast EDM samplers: accuracy against the exact probability-flow ODE solution of Gaussian data, call counts."""

from __future__ import annotations

import math

import pytest
import torch

from sag_bench.modules import edm, solvers

MEAN, STD = 0.3, 0.5


def gaussian_net(calls: list):
    """A denoiser network whose EDM output ``D(x; sigma)`` is the exact posterior mean of N(MEAN, STD^2) data."""

    def net(x_in, mu, mask, c_noise):
        calls.append(1)
        sigma = torch.exp(4 * c_noise).reshape(-1, 1, 1).double()
        x = x_in.double() / edm.c_in(sigma)
        exact = (STD**2 * x + sigma**2 * MEAN) / (STD**2 + sigma**2)
        return ((exact - edm.c_skip(sigma) * x) / edm.c_out(sigma).clamp_min(1e-12)).to(x_in.dtype)

    return net


def exact_solution(noise: torch.Tensor) -> torch.Tensor:
    """x(0) of the probability-flow ODE from x(sigma_max) = sigma_max * noise."""
    x_start = edm.SIGMA_MAX * noise.double()
    return MEAN + (x_start - MEAN) * STD / math.sqrt(STD**2 + edm.SIGMA_MAX**2)


def _error(sampler: str, steps: int) -> tuple[float, int]:
    noise = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mu, mask = torch.zeros_like(noise), torch.ones(2, 1, 16, dtype=torch.float64)
    calls = []
    out = solvers.sample(gaussian_net(calls), mu, mask, steps, sampler, noise)
    return (out - exact_solution(noise)).abs().max().item(), len(calls)


def test_dpmpp_2m_converges_at_second_order_and_beats_euler_at_equal_calls():
    errors = {(sampler, steps): _error(sampler, steps) for sampler in ("euler", "dpmpp-2m") for steps in (50, 200)}
    assert all(calls == steps for (_, steps), (_, calls) in errors.items())
    assert solvers.network_calls(50, "dpmpp-2m") == 50
    dpm_order = errors[("dpmpp-2m", 50)][0] / errors[("dpmpp-2m", 200)][0]
    euler_order = errors[("euler", 50)][0] / errors[("euler", 200)][0]
    assert dpm_order > 10 and euler_order < 6  # 4x the steps: error / 16 (second order) vs / 4 (first order)
    assert errors[("dpmpp-2m", 50)][0] < errors[("euler", 200)][0] / 2


def test_heun_through_solvers_is_edm_heun():
    error, calls = _error("heun", 50)
    assert calls == solvers.network_calls(50, "heun") == 99
    assert error < _error("euler", 200)[0] / 2


def test_unknown_sampler_is_an_error():
    with pytest.raises(ValueError, match="dpmpp-2m"):
        _error("ddim", 5)


def test_fastsag_system_picks_the_fast_sampler_by_name_and_records_it():
    from pathlib import Path

    import sag_bench
    from sag_bench.errors import UserError
    from sag_bench.systems.fastsag.system import FastSAGSystem

    ckpt = Path(sag_bench.__file__).parent / "checkpoints" / "fastsag.pt"
    vocals = 0.3 * torch.sin(torch.arange(24_000) / 24_000 * 2 * math.pi * 330)[None]
    outputs = {}
    for sampler, steps in (("dpmpp-2m", 4), ("euler", 4)):
        system = FastSAGSystem(checkpoint=ckpt, sampler=sampler, steps=steps)
        system.load("cpu")
        outputs[sampler] = system.generate(vocals, seed=0)
        info = system.describe()
        assert (info["sampler"], info["network_calls_per_window"], info["dtype"]) == (sampler, 4, "float32")
    assert outputs["dpmpp-2m"].shape == vocals.shape and torch.isfinite(outputs["dpmpp-2m"]).all()
    assert not torch.equal(outputs["dpmpp-2m"], outputs["euler"])
    with pytest.raises(UserError, match="dpmpp-2m"):
        FastSAGSystem(checkpoint=ckpt, sampler="ddim")
