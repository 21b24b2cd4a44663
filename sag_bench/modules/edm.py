"""EDM diffusion (Karras et al. 2022) as FastSAG uses it (paper section 3): training noise distribution,
CoMoSpeech-style preconditioning, loss weighting, the Karras sigma schedule and deterministic Euler / Heun samplers.

The denoiser network ``net(x_in, mu, mask, c_noise)`` maps a scaled noisy mel ``[B, F, T]``, the prior ``mu``
``[B, F, T]``, a frame mask ``[B, 1, T]`` and ``c_noise`` ``[B]`` to ``F_theta`` ``[B, F, T]``.
"""

from __future__ import annotations

from typing import Callable

import torch

# FastSAG section 3 (EDM settings): ln(sigma) ~ N(P_MEAN, P_STD^2) in training; sigma_data; schedule ends and rho.
P_MEAN = -1.2
P_STD = 1.2
SIGMA_DATA = 0.5
SIGMA_MIN = 0.002  # also the epsilon of eq. 8
SIGMA_MAX = 80.0
RHO = 7.0
# FastSAG section 5.2: first-order ODE solver with 50 sampling steps.
DEFAULT_STEPS = 50
SAMPLERS = ("euler", "heun")
# Noise-level schedules for ``steps``: "karras" = eq. 4 with ``steps`` levels then 0; "fastsag-code" = the authors'
# code, which spaces ``steps + 1`` levels from sigma_max to sigma_min (ramp i / steps) before the final 0, so their
# 50-step Euler sampler makes 51 network calls (reference facts; their output is reproduced only this way).
SCHEDULES = ("karras", "fastsag-code")

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def karras_sigmas(steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Eq. 4: ``steps`` noise levels from ``sigma_max`` down to ``sigma_min`` spaced evenly in ``sigma^(1/rho)``,
    followed by a final 0 (``steps + 1`` values, float64 for exact endpoints)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device=device) if steps > 1 else \
        torch.zeros(1, dtype=torch.float64, device=device)
    inv_max, inv_min = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    sigmas = (inv_max + ramp * (inv_min - inv_max)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def schedule_sigmas(steps: int, schedule: str = "karras", device: str | torch.device = "cpu") -> torch.Tensor:
    """The noise levels :func:`sample` visits for ``steps`` under ``schedule`` (see ``SCHEDULES``), ending in 0."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    return karras_sigmas(steps + 1 if schedule == "fastsag-code" else steps, device=device)


def c_skip(sigma: torch.Tensor) -> torch.Tensor:
    """Eq. 8: ``sd^2 / ((sigma - eps)^2 + sd^2)``; 1 at ``sigma = eps`` (the consistency boundary)."""
    return SIGMA_DATA**2 / ((sigma - SIGMA_MIN) ** 2 + SIGMA_DATA**2)


def c_out(sigma: torch.Tensor) -> torch.Tensor:
    """Eq. 8: ``sd (sigma - eps) / sqrt(sd^2 + sigma^2)``; 0 at ``sigma = eps``."""
    return SIGMA_DATA * (sigma - SIGMA_MIN) / torch.sqrt(SIGMA_DATA**2 + sigma**2)


def c_in(sigma: torch.Tensor) -> torch.Tensor:
    """EDM input scaling ``1 / sqrt(sigma^2 + sd^2)`` (unit-variance network input)."""
    return 1.0 / torch.sqrt(sigma**2 + SIGMA_DATA**2)


def c_noise(sigma: torch.Tensor) -> torch.Tensor:
    """EDM noise conditioning ``ln(sigma) / 4`` (FastSAG section 4.3 replaces the time step with ln(sigma))."""
    return torch.log(sigma) / 4.0


def loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """EDM loss weight ``(sigma^2 + sd^2) / (sigma sd)^2``."""
    return (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2


def _expand(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.reshape(-1, 1, 1)


def denoise(net: Denoiser, x: torch.Tensor, sigma: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``D(x; sigma) = c_skip x + c_out F(c_in x, mu, mask, c_noise)``, masked; ``sigma`` is ``[B]``."""
    s = _expand(sigma)
    return (c_skip(s) * x + c_out(s) * net(c_in(s) * x, mu, mask, c_noise(sigma))) * mask


def training_loss(net: Denoiser, target: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Weighted denoising loss (eq. 5 with EDM weighting): masked MSE averaged over valid frames and bins.

    ``sigma = exp(P_MEAN + P_STD n)``; the noise is ``N(0, sigma^2)`` around the clean mel (not shifted by ``mu``).
    """
    batch = target.shape[0]
    normal = torch.randn(batch, device=target.device, dtype=target.dtype, generator=generator)
    sigma = torch.exp(P_MEAN + P_STD * normal)
    noise = torch.randn(target.shape, device=target.device, dtype=target.dtype, generator=generator) * _expand(sigma)
    denoised = denoise(net, (target + noise) * mask, sigma, mu, mask)
    per_item = ((denoised - target) ** 2 * mask).sum(dim=(1, 2)) / (mask.sum(dim=(1, 2)) * target.shape[1])
    return (loss_weight(sigma) * per_item).mean()


@torch.no_grad()
def sample(net: Denoiser, mu: torch.Tensor, mask: torch.Tensor, steps: int = DEFAULT_STEPS, sampler: str = "euler",
           generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
           schedule: str = "karras") -> torch.Tensor:
    """Solve the probability-flow ODE from ``x = sigma_max z`` to sigma 0 on the ``schedule`` noise levels.

    ``euler``: first order, one network call per level before 0. ``heun``: EDM's second-order correction on every
    step except the last (to sigma 0). :func:`network_calls` counts the calls. Deterministic given ``generator``,
    or given ``noise`` (the standard normal starting point, shaped like ``mu``), which takes precedence.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    sigmas = schedule_sigmas(steps, schedule, device=mu.device).to(mu.dtype)
    if noise is None:
        noise = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    x = noise * sigmas[0] * mask
    ones = torch.ones(mu.shape[0], device=mu.device, dtype=mu.dtype)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        slope = (x - denoise(net, x, sigma * ones, mu, mask)) / sigma
        x_next = x + (sigma_next - sigma) * slope
        if sampler == "heun" and sigma_next > 0:
            slope_next = (x_next - denoise(net, x_next, sigma_next * ones, mu, mask)) / sigma_next
            x_next = x + (sigma_next - sigma) * 0.5 * (slope + slope_next)
        x = x_next
    return x * mask


def network_calls(steps: int, sampler: str, schedule: str = "karras") -> int:
    """Denoiser evaluations :func:`sample` makes (for RTF reporting and tables)."""
    levels = len(schedule_sigmas(steps, schedule)) - 1
    return levels if sampler == "euler" else 2 * levels - 1

