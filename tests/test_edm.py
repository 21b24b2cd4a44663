"""EDM maths against the formulas of FastSAG section 3 / Karras et al. (2022)."""

from __future__ import annotations

import math

import pytest
import torch

from sag_bench.modules import edm


def test_schedule_endpoints_and_rho_spacing():
    sigmas = edm.karras_sigmas(50)
    assert sigmas.shape == (51,)
    assert sigmas[0].item() == pytest.approx(80.0, rel=1e-12)
    assert sigmas[49].item() == pytest.approx(0.002, rel=1e-12)
    assert sigmas[50].item() == 0.0
    roots = sigmas[:-1] ** (1 / 7)  # evenly spaced in sigma^(1/rho)
    steps = roots[1:] - roots[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-9)
    assert steps[0].item() == pytest.approx((0.002 ** (1 / 7) - 80 ** (1 / 7)) / 49, rel=1e-12)
    i = 10  # eq. 4 at one interior point
    expected = (80 ** (1 / 7) + i / 49 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert sigmas[i].item() == pytest.approx(expected, rel=1e-12)
    assert torch.all(sigmas[1:] < sigmas[:-1])


def test_preconditioning_coefficients_match_eq_8():
    sigma = torch.tensor([0.002, 0.5, 1.0, 80.0], dtype=torch.float64)
    sd, eps = 0.5, 0.002
    assert torch.allclose(edm.c_skip(sigma), sd**2 / ((sigma - eps) ** 2 + sd**2))
    assert torch.allclose(edm.c_out(sigma), sd * (sigma - eps) / torch.sqrt(sd**2 + sigma**2))
    assert edm.c_skip(sigma)[0].item() == 1.0 and edm.c_out(sigma)[0].item() == 0.0  # boundary: D(x; eps) = x
    assert edm.c_in(torch.tensor(0.0)).item() == pytest.approx(2.0)
    assert edm.c_noise(torch.tensor(math.e**4)).item() == pytest.approx(1.0)
    # loss weight = 1 / c_out^2 of plain EDM: (sigma^2 + sd^2) / (sigma sd)^2
    assert edm.loss_weight(torch.tensor(0.5)).item() == pytest.approx((0.25 + 0.25) / 0.0625)
    assert edm.loss_weight(torch.tensor(1.0)).item() == pytest.approx(1.25 / 0.25)


def _oracle(x0: torch.Tensor):
    """A network whose denoiser output is exactly ``x0`` (solves c_skip x + c_out F = x0 for F)."""
    def net(x_in, mu, mask, c_noise):
        sigma = torch.exp(4 * c_noise).reshape(-1, 1, 1)
        x = x_in / edm.c_in(sigma)
        if torch.allclose(sigma, torch.full_like(sigma, edm.SIGMA_MIN)):
            return torch.zeros_like(x)  # c_out(eps) = 0: F does not matter there (and 0/0 would be rounding noise)
        return (x0 - edm.c_skip(sigma) * x) / edm.c_out(sigma)
    return net


def test_samplers_recover_the_clean_sample_with_an_oracle_denoiser():
    x0 = torch.randn(2, 4, 8, dtype=torch.float64)
    mu, mask = torch.zeros_like(x0), torch.ones(2, 1, 8, dtype=torch.float64)
    z = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    euler = edm.sample(_oracle(x0), mu, mask, steps=5, generator=torch.Generator().manual_seed(0))
    # Euler steps with an exact denoiser scale x - x0 linearly with sigma: from x = 80 z, at sigma = eps
    # x - x0 = eps / 80 (80 z - x0); the boundary condition D(x; eps) = x (c_out = 0) keeps that residual.
    assert torch.allclose(euler, x0 + edm.SIGMA_MIN / edm.SIGMA_MAX * (edm.SIGMA_MAX * z - x0), rtol=0, atol=1e-12)
    heun = edm.sample(_oracle(x0), mu, mask, steps=20, sampler="heun", generator=torch.Generator().manual_seed(0))
    assert (heun - x0).abs().max() < 0.02 * z.abs().max()


def test_network_calls_and_fixed_seed_determinism():
    calls = []

    def net(x_in, mu, mask, c_noise):
        calls.append(1)
        return torch.tanh(x_in + mu)

    mu, mask = torch.randn(1, 4, 8), torch.ones(1, 1, 8)
    a = edm.sample(net, mu, mask, steps=6, generator=torch.Generator().manual_seed(3))
    assert len(calls) == edm.network_calls(6, "euler") == 6
    calls.clear()
    b = edm.sample(net, mu, mask, steps=6, sampler="heun", generator=torch.Generator().manual_seed(3))
    assert len(calls) == edm.network_calls(6, "heun") == 11
    assert torch.equal(a, edm.sample(net, mu, mask, steps=6, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(a, edm.sample(net, mu, mask, steps=6, generator=torch.Generator().manual_seed(4)))
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="sampler"):
        edm.sample(net, mu, mask, sampler="dpm")


def test_authors_schedule_has_one_more_level_and_call():
    """The authors' code: ``steps + 1`` levels from sigma_max to sigma_min spaced by i / steps, then 0."""
    sigmas = edm.schedule_sigmas(50, "fastsag-code")
    assert len(sigmas) == 52 and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(edm.SIGMA_MAX) and sigmas[50].item() == pytest.approx(edm.SIGMA_MIN)
    i = 25
    expected = (edm.SIGMA_MAX ** (1 / 7) + i / 50 * (edm.SIGMA_MIN ** (1 / 7) - edm.SIGMA_MAX ** (1 / 7))) ** 7
    assert sigmas[i].item() == pytest.approx(expected, rel=1e-12)
    assert torch.equal(edm.schedule_sigmas(50), edm.karras_sigmas(50))
    calls = []

    def net(x_in, mu, mask, c_noise):
        calls.append(1)
        return torch.tanh(x_in + mu)

    mu, mask = torch.randn(1, 4, 8), torch.ones(1, 1, 8)
    edm.sample(net, mu, mask, steps=6, schedule="fastsag-code", generator=torch.Generator().manual_seed(3))
    assert len(calls) == edm.network_calls(6, "euler", "fastsag-code") == 7
    assert edm.network_calls(50, "euler", "fastsag-code") == 51 and edm.network_calls(50, "euler") == 50
    with pytest.raises(ValueError, match="schedule"):
        edm.sample(net, mu, mask, schedule="linear")


def test_training_loss_is_zero_for_the_oracle_and_masks_padding():
    x0 = torch.randn(3, 4, 8)
    mask = torch.ones(3, 1, 8)
    mask[:, :, 6:] = 0
    x0 = x0 * mask
    loss = edm.training_loss(_oracle(x0), x0, torch.zeros_like(x0), mask, generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(0.0, abs=1e-8)
    zero_net = lambda x_in, mu, m, c: torch.zeros_like(x_in)  # noqa: E731
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    garbage = x0.clone()
    garbage[:, :, 6:] = 100.0  # values in padded frames must not matter
    assert edm.training_loss(zero_net, x0, x0, mask, g()).item() == pytest.approx(
        edm.training_loss(zero_net, garbage * mask, x0, mask, g()).item())
