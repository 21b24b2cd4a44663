"""Loading pretrained backbones from the Hugging Face hub cache without network, with a one-line error when absent."""

from __future__ import annotations

from sag_bench.backbones.base import WeightsMissingError


def weights_missing(weights: str, what: str) -> WeightsMissingError:
    """The error for ``weights`` (a hub id or folder) that do not load offline; names what to fetch and where."""
    return WeightsMissingError(
        f"{what} weights {weights!r} are not available offline: run `hf download {weights}` on a machine with network "
        f"(files land in the Hugging Face cache, $HF_HOME or ~/.cache/huggingface, copy it here) "
        f"or pass weights=<local folder with the downloaded files>"
    )
