"""fadtk's own embedders, constructed one at a time by fadtk name, with a clear error when weights are missing.

fadtk's ``get_all_models()`` constructs every loader (and the CLAP constructors download checkpoints); here a name
is parsed and only that loader is built. Before anything could reach the network, the weights are looked up where
fadtk's loading code will look for them (Hugging Face cache, torch hub, fadtk's checkpoint folder); when they are
absent and downloads are not allowed, :class:`WeightsMissingError` names what to fetch and where it goes.
"""

from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sag_bench.backbones.base import WeightsMissingError
from sag_bench.evaluation.fadtk_compat import contained, import_fadtk
from sag_bench.registry import UnknownComponentError

# fadtk 1.1.0 model_loader.py: checkpoints its CLAP constructors download into <fadtk>/.model-checkpoints/.
CLAP_CHECKPOINTS = {
    "clap-laion-audio": "https://huggingface.co/lukewys/laion_clap/resolve/main/630k-audioset-best.pt",
    "clap-laion-music": "https://huggingface.co/lukewys/laion_clap/resolve/main/music_audioset_epoch_15_esc_90.14.pt",
    "clap-2023": "https://huggingface.co/microsoft/msclap/resolve/main/CLAP_weights_2023.pth",
}
# laion_clap loads these tokenizers / text encoders from the Hugging Face hub when it is imported or built.
LAION_CLAP_HUB_REPOS = ("roberta-base", "bert-base-uncased", "facebook/bart-base")
# torchvggish (torch.hub harritaylor/torchvggish) fetches the repository and these release files.
VGGISH_HUB_REPO = "harritaylor/torchvggish"
VGGISH_WEIGHTS = ("https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                  "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth")
# encodec 0.1.1 downloads its checkpoints from this folder into the torch hub checkpoint directory.
ENCODEC_URL = "https://dl.fbaipublicfiles.com/encodec/v0/"
ENCODEC_CHECKPOINTS = {"encodec-emb": "encodec_24khz-d7cc33bc.th", "encodec-emb-48k": "encodec_48khz-7e698e3e.th"}

NAME_PATTERNS = ("vggish", "MERT-v1-95M[-1..11]", "MERT-v1-330M[-1..23]", "clap-laion-audio", "clap-laion-music",
                 "clap-2023", "encodec-emb", "encodec-emb-48k", "w2v2-{base,large}[-layer]",
                 "hubert-{base,large}[-layer]", "wavlm-{base,base-plus,large}[-layer]",
                 "whisper-{tiny,base,small,medium,large}", "dac-44kHz", "cdpam-{acoustic,content}")


@dataclass(frozen=True)
class FadtkModelSpec:
    """How to build one fadtk loader: its class name in ``fadtk.model_loader`` and constructor arguments."""

    name: str
    class_name: str
    kwargs: dict[str, Any]

    def build(self) -> Any:
        """Construct the loader (no weights are loaded yet, except by the CLAP constructors)."""
        module = import_fadtk("fadtk.model_loader")
        with contained():
            return getattr(module, self.class_name)(**self.kwargs)


def _layer(layer: str | None, top: int) -> int:
    return int(layer) if layer else top


def parse_fadtk_name(name: str) -> FadtkModelSpec:
    """The :class:`FadtkModelSpec` for a fadtk model name; raises :class:`UnknownComponentError` otherwise."""
    if name == "vggish":
        return FadtkModelSpec(name, "VGGishModel", {})
    if match := re.fullmatch(r"MERT-(v1-95M|v1-330M)(?:-(\d+))?", name):
        top = 12 if match[1] == "v1-95M" else 24
        return FadtkModelSpec(name, "MERTModel", {"size": match[1], "layer": _layer(match[2], top)})
    if match := re.fullmatch(r"clap-laion-(audio|music)", name):
        return FadtkModelSpec(name, "CLAPLaionModel", {"type": match[1]})
    if name == "clap-2023":
        return FadtkModelSpec(name, "CLAPModel", {"type": "2023"})
    if match := re.fullmatch(r"encodec-emb(?:-(48k))?", name):
        return FadtkModelSpec(name, "EncodecEmbModel", {"variant": match[1] or "24k"})
    if match := re.fullmatch(r"(w2v2|hubert)-(base|large)(?:-(\d+))?", name):
        top = 12 if match[2] == "base" else 24
        cls = "W2V2Model" if match[1] == "w2v2" else "HuBERTModel"
        return FadtkModelSpec(name, cls, {"size": match[2], "layer": _layer(match[3], top)})
    if match := re.fullmatch(r"wavlm-(base|base-plus|large)(?:-(\d+))?", name):
        top = 24 if match[1] == "large" else 12
        return FadtkModelSpec(name, "WavLMModel", {"size": match[1], "layer": _layer(match[2], top)})
    if match := re.fullmatch(r"whisper-(tiny|base|small|medium|large)", name):
        return FadtkModelSpec(name, "WhisperModel", {"size": match[1]})
    if name == "dac-44kHz":
        return FadtkModelSpec(name, "DACModel", {})
    if match := re.fullmatch(r"cdpam-(acoustic|content)", name):
        return FadtkModelSpec(name, "CdpamModel", {"mode": match[1]})
    raise UnknownComponentError(f"unknown embedder {name!r}; fadtk names: {', '.join(NAME_PATTERNS)}")


def _hf_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _hf_missing(repo_ids: tuple[str, ...], what: str) -> str | None:
    missing = [repo for repo in repo_ids if not _hf_cached(repo)]
    if not missing:
        return None
    from huggingface_hub.constants import HF_HUB_CACHE

    fetch = "; ".join(f"hf download {repo}" for repo in missing)
    return f"{what}: Hugging Face weights {', '.join(missing)} are not in {HF_HUB_CACHE} (fetch: {fetch})"


def missing_weights(spec: FadtkModelSpec) -> str | None:
    """A one-line description of what to fetch and where, or None when the weights are present locally."""
    import torch

    hub = Path(torch.hub.get_dir())
    if spec.class_name == "VGGishModel":
        files = [hub / "checkpoints" / url.rsplit("/", 1)[1] for url in VGGISH_WEIGHTS]
        repo_dir = hub / (VGGISH_HUB_REPO.replace("/", "_") + "_master")
        if repo_dir.is_dir() and all(f.is_file() for f in files):
            return None
        return (f"vggish: torch.hub repo {VGGISH_HUB_REPO} and {', '.join(u.rsplit('/', 1)[1] for u in VGGISH_WEIGHTS)}"
                f" are not in {hub} (fetch: python -c \"import torch; torch.hub.load('{VGGISH_HUB_REPO}', 'vggish')\")")
    if spec.name in CLAP_CHECKPOINTS:
        url = CLAP_CHECKPOINTS[spec.name]
        checkpoint = Path(import_fadtk("fadtk.model_loader").__file__).parent / ".model-checkpoints" / url.rsplit("/", 1)[1]
        if not checkpoint.is_file():
            return f"{spec.name}: checkpoint missing at {checkpoint} (fetch: {url})"
        if spec.class_name == "CLAPLaionModel":
            return _hf_missing(LAION_CLAP_HUB_REPOS, spec.name)
        return None
    if spec.class_name == "EncodecEmbModel":
        checkpoint = hub / "checkpoints" / ENCODEC_CHECKPOINTS[spec.name]
        if checkpoint.is_file():
            return None
        return f"{spec.name}: checkpoint missing at {checkpoint} (fetch: {ENCODEC_URL}{checkpoint.name})"
    if spec.class_name == "MERTModel":
        return _hf_missing((f"m-a-p/MERT-{spec.kwargs['size']}",), spec.name)
    if spec.class_name in ("W2V2Model", "HuBERTModel", "WavLMModel", "WhisperModel"):
        return _hf_missing((spec.build().huggingface_id,), spec.name)
    return None


@contextmanager
def hub_offline() -> Iterator[None]:
    """Make transformers / huggingface_hub use local files only (no retries against an unreachable hub)."""
    import huggingface_hub.constants as hf_constants
    import transformers.utils.hub as tf_hub

    saved = hf_constants.HF_HUB_OFFLINE, tf_hub._is_offline_mode
    hf_constants.HF_HUB_OFFLINE, tf_hub._is_offline_mode = True, True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE, tf_hub._is_offline_mode = saved


def build_fadtk_loader(name: str, device: str, allow_download: bool = False) -> Any:
    """Construct and load fadtk's loader ``name`` on ``device``.

    Without ``allow_download``, missing weights raise :class:`WeightsMissingError` before any download is tried,
    and loading runs with the Hugging Face hub offline. Load failures caused by missing files or network are
    reported the same way.
    """
    import torch

    spec = parse_fadtk_name(name)
    if not allow_download and (problem := missing_weights(spec)):
        raise WeightsMissingError(problem)
    loader = spec.build()
    loader.device = torch.device(device)
    try:
        with contained(), (nullcontext() if allow_download else hub_offline()):
            loader.load_model()
    except (OSError, RuntimeError, ImportError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsMissingError(f"{name}: loading failed ({first_line}); fetch its weights online with "
                                  f"`sag-bench fad --download --embedder {name} ...`") from None
    return loader
