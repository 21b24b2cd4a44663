"""Reference paths: what a system's reference stems go through before FAD ("degraded reference", FastSAG 4.2:
"degraded using the corresponding vocoder or codec").

A path is named by a *role* string: ``none``; ``vocoder`` (the loaded system's ``vocoder`` attribute, a
:class:`~sag_bench.backbones.base.Vocoder`: BigVGAN log-mel -> vocoder); ``codec:N`` (the loaded system's ``codec``
attribute, a :class:`~sag_bench.backbones.base.Codec`: encode -> first N codebooks -> decode); or any registered
vocoder/codec backbone name (a fixed path for every system, all codebooks). A system declares its role in its
registry entry (``Entry.degradation``); the spec's ``[protocol] degrade`` picks ``system`` (each its own), ``none``
or one backbone name for all.

Paths are keyed by content: the hash of what the path makes of a fixed seeded probe signal, so systems whose paths
resynthesise identically share one copy of the reference mixes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from sag_bench import registry
from sag_bench.audio import SAMPLE_RATE, mel_spectrogram
from sag_bench.backbones.base import Backbone, Codec, Vocoder
from sag_bench.errors import UserError

NONE = "none"
SYSTEM = "system"  # [protocol] degrade = "system": each system's own role
PROBE_SECONDS = 1.0
PROBE_SEED = 20240


def role_for(degrade: str, system_name: str) -> str:
    """The role a spec's ``[protocol] degrade`` gives the registered system ``system_name``."""
    if degrade == SYSTEM:
        return registry.entry("systems", system_name).degradation or NONE
    return degrade


def uses_system(role: str) -> bool:
    """True for roles that resynthesise through the loaded system's own backbone (``vocoder``, ``codec:N``)."""
    return role == "vocoder" or role.startswith("codec:")


def fixed_backbone(role: str) -> str | None:
    """The registered backbone a role names (whose weights a run needs), or None for ``none`` and system roles."""
    return None if role == NONE or uses_system(role) else role


def describe_role(role: str) -> str:
    """A one-line reading of a role (dry runs, manifests)."""
    if role == NONE:
        return "none (clean stems)"
    if role == "vocoder":
        return "the system's own vocoder (log-mel -> BigVGAN, or the offline stand-in its checkpoint names)"
    if role.startswith("codec:"):
        return f"the system's own codec, decoded from {role.removeprefix('codec:')} codebooks"
    return f"backbone {role} (fixed, for every system)"


class ReferencePath:
    """One resolved path: callable on mono float32 audio at 24 kHz; ``key`` names it by content."""

    def __init__(self, role: str, backbone: Backbone | None = None, codebooks: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.role, self.backbone, self.codebooks, self.device = role, backbone, codebooks, torch.device(device)
        self._key: str | None = None

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """``audio`` resynthesised through the path (same length; zero-padded if the backbone returns less)."""
        if self.backbone is None:
            return np.asarray(audio, dtype=np.float32)
        wav = torch.from_numpy(np.asarray(audio, dtype=np.float32))[None].to(self.device)
        with torch.inference_mode():
            if isinstance(self.backbone, Vocoder):
                out = self.backbone.decode(mel_spectrogram(wav))
            else:
                codes = self.backbone.encode(wav)
                out = self.backbone.decode(codes[:, : self.codebooks] if self.codebooks else codes)
        out = out[0].float().cpu().numpy()[: len(audio)]
        return np.pad(out, (0, len(audio) - len(out)))

    @property
    def key(self) -> str:
        """``none``, or ``<role>-<backbone>-<hash of the probe's resynthesis>`` (safe as a folder name)."""
        if self.backbone is None:
            return NONE
        if self._key is None:
            t = np.arange(int(PROBE_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
            noise = np.random.default_rng(PROBE_SEED).standard_normal(len(t))
            probe = (0.4 * np.sin(2 * np.pi * 220.0 * t) + 0.05 * noise).astype(np.float32)
            digest = hashlib.sha256(np.round(self(probe), 4).astype(np.float32).tobytes()).hexdigest()[:10]
            self._key = f"{self.role.replace(':', '')}-{self.backbone.name}-{digest}"
        return self._key

    def describe(self) -> dict[str, Any]:
        """What the run manifest records about the path."""
        return {"role": self.role, "what": describe_role(self.role), "key": self.key,
                "backbone": self.backbone.describe() if self.backbone is not None else None,
                "codebooks": self.codebooks}


def resolve(role: str, system: Any = None, device: str | torch.device = "cpu") -> ReferencePath:
    """The path a role names; ``vocoder`` and ``codec:N`` take the backbone of the loaded ``system``."""
    if role == NONE:
        return ReferencePath(NONE)
    if uses_system(role):
        attribute, kind = ("vocoder", Vocoder) if role == "vocoder" else ("codec", Codec)
        backbone = getattr(system, attribute, None)
        if not isinstance(backbone, kind):
            raise UserError(f"degradation {role!r} needs a loaded system with a {attribute} attribute "
                            f"({kind.__name__}); {getattr(system, 'name', system)!r} has none")
        codebooks = int(role.removeprefix("codec:")) if attribute == "codec" else None
        if codebooks is not None and not 0 < codebooks <= backbone.n_codebooks:
            raise UserError(f"degradation {role!r}: {backbone.name} has {backbone.n_codebooks} codebooks")
        return ReferencePath(role, backbone, codebooks, getattr(system, "device", device))
    backbone = registry.build("backbones", role).to(device)
    if not isinstance(backbone, (Vocoder, Codec)):
        raise UserError(f"backbone {role!r} is neither a vocoder nor a codec; it cannot degrade a reference")
    return ReferencePath(role, backbone, None, device)
