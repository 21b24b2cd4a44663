"""Fast samplers for FastSAG's EDM denoiser: fewer network calls than the paper's 50-step (51-call) Euler schedule.

``dpmpp-2m`` is DPM-Solver++(2M) (Lu et al. 2022) written for EDM's parametrisation, where the ODE variable is the
noise level itself: with ``lambda = -ln(sigma)`` and the denoised estimate ``D``, one step from ``sigma`` to
``sigma'`` (``h = ln(sigma / sigma')``) is ``x' = (sigma'/sigma) x + (1 - e^{-h}) D_hat``, where ``D_hat`` is ``D``
on the first and on the last step (to sigma 0) and otherwise the second-order multistep combination
``(1 + 1/(2r)) D_i - 1/(2r) D_{i-1}`` with ``r = h_{i-1} / h_i``. It needs one network call per noise level, so
``steps`` levels of the Karras schedule cost ``steps`` calls. ``euler`` and ``heun`` are :func:`edm.sample`'s.
"""

from __future__ import annotations

from typing import Any

import torch

from sag_bench.modules import edm

SAMPLERS = (*edm.SAMPLERS, "dpmpp-2m")


@torch.no_grad()
def dpmpp_2m(net: edm.Denoiser, mu: torch.Tensor, mask: torch.Tensor, steps: int,
             noise: torch.Tensor) -> torch.Tensor:
    """DPM-Solver++(2M) on ``steps`` Karras noise levels from ``x = sigma_max * noise`` to sigma 0."""
    sigmas = edm.karras_sigmas(steps, device=mu.device).to(mu.dtype)
    x = noise * sigmas[0] * mask
    ones = torch.ones(mu.shape[0], device=mu.device, dtype=mu.dtype)
    previous, previous_h = None, None
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = edm.denoise(net, x, sigma * ones, mu, mask)
        if sigma_next == 0:  # the step to sigma 0 lands on the denoised estimate
            x = denoised
            break
        h = torch.log(sigma / sigma_next)
        estimate = denoised
        if previous is not None:
            r = previous_h / h
            estimate = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x = (sigma_next / sigma) * x + (1 - torch.exp(-h)) * estimate
        previous, previous_h = denoised, h
    return x * mask


def sample(net: edm.Denoiser, mu: torch.Tensor, mask: torch.Tensor, steps: int, sampler: str,
           noise: torch.Tensor, schedule: str = "karras", **options: Any) -> torch.Tensor:
    """Sample with ``sampler`` (one of :data:`SAMPLERS`) on the ``schedule`` noise levels (``edm.SCHEDULES``;
    dpmpp-2m runs on the Karras levels only); ``options`` go to :func:`edm.sample` for its samplers."""
    if sampler == "dpmpp-2m":
        if options or schedule != "karras":
            raise ValueError(f"dpmpp-2m takes the karras schedule and no options, not {schedule!r} {sorted(options)}")
        return dpmpp_2m(net, mu, mask, steps, noise)
    if sampler not in edm.SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    return edm.sample(net, mu, mask, steps, sampler, noise=noise, schedule=schedule, **options)


def network_calls(steps: int, sampler: str, schedule: str = "karras") -> int:
    """Denoiser evaluations of :func:`sample` for ``steps`` under ``schedule``."""
    return steps if sampler == "dpmpp-2m" else edm.network_calls(steps, sampler, schedule)
