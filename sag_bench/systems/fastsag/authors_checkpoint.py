"""The FastSAG authors' released ``fastsag.pt`` (their key layout) mapped onto :class:`FastSAGModel`.

Their file is a plain state dict of ``FastSAG(vocoder=BigVGAN, wav2vec=MERT)`` (reference facts):
``semantic_encoder.0.*`` semantic WaveNet, ``semantic_encoder.1.*`` Perceiver-IO (one LayerNorm shared by queries and
context in its self-attention blocks), ``mixed_encoder.*`` prior WaveNet, ``decoder.estimator.*`` Grad-TTS U-Net
(scalar rezero gains ``...fn.g``), plus ``vocoder.*`` (BigVGAN) and ``wav2vec.*`` (MERT) entries. Block sizes are read
from the tensors' shapes; head counts and GroupNorm groups are not in any shape and come from the authors' code.
The backbone entries are not loaded (the backbones come from their own weights, see ``backbones/catalog.py``):
:class:`AuthorsWeights` lists every group of entries that was left out, and the system reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Mapping

import torch

from sag_bench.audio import CLIP_SAMPLES, MEL_FRAMES_PER_CLIP, mel_frames
from sag_bench.systems.fastsag.config import PADDED_FRAMES, FastSAGConfig, ModelConfig, Variant, load_preset

# Top-level prefixes of the authors' trainable blocks, and of the frozen backbones stored beside them.
MODEL_PREFIXES = ("semantic_encoder.0.", "semantic_encoder.1.", "mixed_encoder.", "decoder.estimator.")
BACKBONE_PREFIXES = {"vocoder.": "BigVGAN vocoder", "wav2vec.": "MERT semantic encoder"}
# Not readable from shapes (reference facts): Perceiver-IO 8 heads (x 128 at paper size); Grad-TTS linear attention
# 4 heads and GroupNorm with 8 groups.
PERCEIVER_HEADS = 8
UNET_HEADS = 4
UNET_GROUPS = 8
# Variants the released checkpoint can drive: the Perceiver path and the interpolate ablation (same other blocks).
LOADABLE = (Variant("perceiver", "semantic", True), Variant("interpolate", "semantic", True))

# Their names -> ours, applied in order to every key (each substitution sees the result of the previous ones).
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^semantic_encoder\.0\.", "semantic_projection."),
    (r"^semantic_encoder\.1\.", "prior_projection.resampler.perceiver."),
    (r"^mixed_encoder\.", "prior_projection.encoder."),
    (r"^decoder\.estimator\.", "denoiser."),
    # WaveNet
    (r"\.init_conv\.", ".input_conv."),
    (r"^(semantic_projection|prior_projection\.encoder)\.final_conv\.", r"\1.output_conv."),
    (r"\.stacks\.(\d+)\.blocks\.(\d+)\.conv\.", r".stacks.\1.\2.dilated."),
    (r"\.stacks\.(\d+)\.blocks\.(\d+)\.res_conv\.", r".stacks.\1.\2.residual."),
    (r"\.stacks\.(\d+)\.blocks\.(\d+)\.skip_conv\.", r".stacks.\1.\2.skip."),
    # Perceiver-IO
    (r"\.cross_attend_blocks\.0\.fn\.", ".encode_attention."),
    (r"\.cross_attend_blocks\.0\.norm\.", ".encode_attention.norm_query."),
    (r"\.cross_attend_blocks\.0\.norm_context\.", ".encode_attention.norm_context."),
    (r"\.cross_attend_blocks\.1\.", ".encode_feed_forward."),
    (r"\.layers\.(\d+)\.0\.fn\.", r".blocks.\1.attention."),
    (r"\.layers\.(\d+)\.0\.norm\.", r".blocks.\1.attention.norm_shared."),
    (r"\.layers\.(\d+)\.1\.", r".blocks.\1.feed_forward."),
    (r"\.decoder_cross_attn\.fn\.", ".decode_attention."),
    (r"\.decoder_cross_attn\.norm\.", ".decode_attention.norm_query."),
    (r"\.decoder_cross_attn\.norm_context\.", ".decode_attention.norm_context."),
    (r"feed_forward\.fn\.net\.0\.", "feed_forward.up."),
    (r"feed_forward\.fn\.net\.2\.", "feed_forward.down."),
    (r"\.to_logits\.", ".to_out."),
    # Grad-TTS U-Net
    (r"^denoiser\.mlp\.", "denoiser.noise_mlp."),
    (r"\.(downs|ups)\.(\d+)\.0\.", r".\1.\2.resnet1."),
    (r"\.(downs|ups)\.(\d+)\.1\.", r".\1.\2.resnet2."),
    (r"\.(downs|ups)\.(\d+)\.2\.fn\.g$", r".\1.\2.attention.gain"),
    (r"\.(downs|ups)\.(\d+)\.2\.fn\.fn\.", r".\1.\2.attention."),
    (r"\.(downs|ups)\.(\d+)\.3\.conv\.", r".\1.\2.resample."),
    (r"\.mid_block1\.", ".mid1."),
    (r"\.mid_block2\.", ".mid2."),
    (r"\.mid_attn\.fn\.g$", ".mid_attention.gain"),
    (r"\.mid_attn\.fn\.fn\.", ".mid_attention."),
    (r"\.mlp\.1\.", ".noise_proj."),
    (r"\.(block1|block2|final_block)\.block\.0\.", r".\1.conv."),
    (r"\.(block1|block2|final_block)\.block\.1\.", r".\1.norm."),
    (r"\.res_conv\.", ".shortcut."),
)
# Our self-attention blocks keep separate query and context LayerNorms; the authors' single norm fills both.
_SHARED_NORM = ".attention.norm_shared."


@dataclass(frozen=True)
class AuthorsWeights:
    """A translated authors' checkpoint: our config and state dict, and what was left out (name -> tensor count)."""

    config: FastSAGConfig
    weights: dict[str, torch.Tensor]
    left_out: dict[str, int]


def is_authors_layout(state: object) -> bool:
    """True for a plain state dict with the authors' block prefixes (their ``fastsag.pt``)."""
    return isinstance(state, Mapping) and all(isinstance(k, str) for k in state) and \
        any(k.startswith("semantic_encoder.0.") for k in state) and any(k.startswith("decoder.estimator.") for k in state)


def rename(key: str) -> list[str]:
    """Our state-dict key(s) for one of the authors' model keys (two for a shared LayerNorm)."""
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    if _SHARED_NORM in key:
        return [key.replace(_SHARED_NORM, ".attention.norm_query."),
                key.replace(_SHARED_NORM, ".attention.norm_context.")]
    return [key]


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.match(pattern, k))})


def _shape(state: Mapping[str, torch.Tensor], key: str, path: str) -> torch.Size:
    if key not in state:
        raise ValueError(f"{path}: the authors' layout lacks {key}")
    return state[key].shape


def model_config(state: Mapping[str, torch.Tensor], path: str = "checkpoint",
                 perceiver_heads: int = PERCEIVER_HEADS) -> ModelConfig:
    """Block sizes read from the tensors' shapes (head counts and groups from the authors' code)."""
    semantic = _shape(state, "semantic_encoder.0.init_conv.weight", path)
    prior = _shape(state, "mixed_encoder.init_conv.weight", path)
    unet_dim = _shape(state, "decoder.estimator.mlp.0.weight", path)[1]
    levels = _count(state, r"decoder\.estimator\.downs\.(\d+)\.")
    mults = tuple(_shape(state, f"decoder.estimator.downs.{i}.0.block1.block.0.weight", path)[0] // unet_dim
                  for i in range(levels))
    qkv = _shape(state, "decoder.estimator.mid_attn.fn.fn.to_qkv.weight", path)[0]
    sizes: dict[str, object] = dict(
        semantic_dim=semantic[1], semantic_hidden=None if semantic[0] == semantic[1] else semantic[0],
        semantic_stacks=_count(state, r"semantic_encoder\.0\.stacks\.(\d+)\."),
        semantic_layers=_count(state, r"semantic_encoder\.0\.stacks\.0\.blocks\.(\d+)\."),
        prior_stacks=_count(state, r"mixed_encoder\.stacks\.(\d+)\."),
        prior_layers=_count(state, r"mixed_encoder\.stacks\.0\.blocks\.(\d+)\."),
        prior_hidden=None if prior[0] == prior[1] else prior[0], n_mels=prior[1],
        unet_dim=unet_dim, unet_mults=mults, unet_groups=UNET_GROUPS, unet_heads=UNET_HEADS,
        unet_head_dim=qkv // 3 // UNET_HEADS, padded_frames=PADDED_FRAMES)
    frames = MEL_FRAMES_PER_CLIP
    if "semantic_encoder.1.latents" in state:
        latents = state["semantic_encoder.1.latents"].shape
        queries = _shape(state, "semantic_encoder.1.queries", path)
        inner = _shape(state, "semantic_encoder.1.cross_attend_blocks.0.fn.to_q.weight", path)[0]
        if inner % perceiver_heads:
            raise ValueError(f"{path}: Perceiver attention width {inner} is not a multiple of {perceiver_heads} heads")
        frames = queries[0]
        sizes.update(perceiver_latents=latents[0], perceiver_latent_dim=latents[1], perceiver_query_dim=queries[1],
                     perceiver_depth=_count(state, r"semantic_encoder\.1\.layers\.(\d+)\."),
                     perceiver_heads=perceiver_heads, perceiver_head_dim=inner // perceiver_heads,
                     perceiver_ff_mult=_shape(state, "semantic_encoder.1.cross_attend_blocks.1.fn.net.0.weight",
                                              path)[0] // (2 * latents[1]))
    if frames != mel_frames(CLIP_SAMPLES):
        raise ValueError(f"{path}: {frames} output queries; the authors' model makes {mel_frames(CLIP_SAMPLES)} "
                         f"mel frames per 10 s clip")
    return ModelConfig(**sizes)  # type: ignore[arg-type]


def translate(state: Mapping[str, torch.Tensor], variant: Variant, path: str = "checkpoint",
              perceiver_heads: int = PERCEIVER_HEADS) -> AuthorsWeights:
    """Our config and weights for ``variant`` from the authors' state dict; one-line ``ValueError`` on a mismatch."""
    if variant not in LOADABLE:
        raise ValueError(f"{path}: the authors' checkpoint drives fastsag and fastsag-interpolate, not {variant.name}")
    left_out: dict[str, int] = {}
    weights: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        group = next((f"{name} ({prefix}*)" for prefix, name in BACKBONE_PREFIXES.items()
                      if key.startswith(prefix)), None)
        if group is None and variant.resampler == "interpolate" and key.startswith("semantic_encoder.1."):
            group = "Perceiver-IO (semantic_encoder.1.*, unused by the interpolate variant)"
        if group is not None:
            left_out[group] = left_out.get(group, 0) + 1
        elif key.startswith(MODEL_PREFIXES):
            weights.update({ours: tensor for ours in rename(key)})
        else:
            raise ValueError(f"{path}: unexpected entry {key!r} in the authors' layout")
    config = load_preset("paper", variant)
    config = replace(config, model=model_config(state, path, perceiver_heads))
    return AuthorsWeights(config, weights, left_out)
