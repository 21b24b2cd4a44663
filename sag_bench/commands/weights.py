"""``sag-bench weights SPEC``: every pretrained weight, checkpoint and dataset a spec needs, once each, checked.

Each line says whether the thing is present, where it lands and the exact command that fetches or builds it
(Hugging Face weights with ``hf download``, the CLI of ``huggingface_hub``). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

MUSDB_PROTOCOLS = {"fastsag": "data/musdb18-fastsag", "singsong": "data/musdb18-singsong"}
FASTSAG_AUTHORS_FOLDER = ("https://hkustconnect-my.sharepoint.com/:f:/g/personal/jchenil_connect_ust_hk/"
                          "EjM0CpbBGC9NsEMI9iLFyVQBC3A9tDInoG-EGmDciRQqyQ?e=rqfidw")
HF_RESOLVE = "https://huggingface.co/"


@dataclass
class Need:
    """One thing a spec needs: what it is, who uses it, where it lands, how to get it and whether it is there."""

    what: str
    location: str
    command: str
    present: bool
    users: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The printed form: a status line, then where and how (indented)."""
        return [f"[{'ok' if self.present else 'MISSING'}] {self.what} (for {', '.join(self.users)})",
                f"      at:  {self.location}", f"      get: {self.command}"]


def hf_need(repo: str) -> Need:
    """A Hugging Face model repository, looked up in the hub cache (``$HF_HOME``, ``$HF_HUB_CACHE``)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    present = any(path.is_file() for path in folder.glob("snapshots/*/*"))
    return Need(f"Hugging Face {repo}", str(folder), f"hf download {repo}", present)


def file_need(url: str, target: Path) -> Need:
    """One checkpoint file at ``target``; fetched with ``hf download`` when it lives on the Hugging Face hub."""
    if url.startswith(HF_RESOLVE):
        repo, _, filename = url.removeprefix(HF_RESOLVE).partition("/resolve/main/")
        command = f"hf download {repo} {filename} --local-dir {target.parent}"
    else:
        command = f"curl -L --create-dirs -o {target} {url}"
    return Need(f"checkpoint {target.name}", str(target), command, target.is_file())


def backbone_needs(name: str) -> list[Need]:
    """The pretrained weights of a registered backbone (none for the offline stand-ins)."""
    if name == "mert-v1-95m":
        from sag_bench.backbones.semantic import MERT_HUB_ID
        return [hf_need(MERT_HUB_ID)]
    if name == "bigvgan-24k-100band":
        from sag_bench.backbones.vocoder import BIGVGAN_HUB_ID
        return [hf_need(BIGVGAN_HUB_ID)]
    if name == "encodec-24k":
        from sag_bench.backbones.codec import ENCODEC_HUB_ID
        return [hf_need(ENCODEC_HUB_ID)]
    if name == "htdemucs":
        from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
        return [hf_need(f"{DEFAULT_NAMESPACE}/{hf_repo_name(name)}")]
    return []


def embedder_needs(name: str) -> list[Need]:
    """The weights fadtk's embedder ``name`` loads (none for our offline embedders)."""
    import torch

    from sag_bench.evaluation import fadtk_models as fm
    from sag_bench.evaluation.fadtk_compat import import_fadtk

    from sag_bench import registry
    from sag_bench.evaluation.catalog import FADTK_LOADER

    if registry.entry("embedders", name).target != FADTK_LOADER:  # ours: offline, weights (if any) ship in wheels
        return []
    spec = fm.parse_fadtk_name(name)
    hub = Path(torch.hub.get_dir())
    if spec.class_name == "VGGishModel":
        files = [hub / "checkpoints" / url.rsplit("/", 1)[1] for url in fm.VGGISH_WEIGHTS]
        repo_dir = hub / (fm.VGGISH_HUB_REPO.replace("/", "_") + "_master")
        return [Need(f"torch.hub {fm.VGGISH_HUB_REPO}", f"{repo_dir} and {hub / 'checkpoints'}",
                     f"python -c \"import torch; torch.hub.load('{fm.VGGISH_HUB_REPO}', 'vggish')\"",
                     repo_dir.is_dir() and all(path.is_file() for path in files))]
    if spec.name in fm.CLAP_CHECKPOINTS:
        url = fm.CLAP_CHECKPOINTS[spec.name]
        folder = Path(import_fadtk("fadtk.model_loader").__file__).parent / ".model-checkpoints"
        needs = [file_need(url, folder / url.rsplit("/", 1)[1])]
        if spec.class_name == "CLAPLaionModel":
            needs += [hf_need(repo) for repo in fm.LAION_CLAP_HUB_REPOS]
        return needs
    if spec.class_name == "EncodecEmbModel":
        filename = fm.ENCODEC_CHECKPOINTS[spec.name]
        return [file_need(fm.ENCODEC_URL + filename, hub / "checkpoints" / filename)]
    if spec.class_name == "MERTModel":
        return [hf_need(f"m-a-p/MERT-{spec.kwargs['size']}")]
    if spec.class_name in ("W2V2Model", "HuBERTModel", "WavLMModel", "WhisperModel"):
        return [hf_need(spec.build().huggingface_id)]
    return []


def checkpoint_need(system) -> Need | None:
    """The trained checkpoint a spec row loads, with the way to make it (train, or the authors' FastSAG weights)."""
    path = system.checkpoint_path()
    if path is None:
        return None
    command = (f"sag-bench train {system.name} --data data/in-domain --preset paper --out runs/{system.name}, "
               f"then copy its weights to {path}")
    if system.name == "fastsag":
        command += (f"  |  or the authors' checkpoint: download fastsag.pt from {FASTSAG_AUTHORS_FOLDER} "
                    f"to {path} (read by the authors'-format loader of the protocol issue)")
    return Need(f"checkpoint of {system.name}", str(path), command, path.exists())


def data_needs(spec) -> list[Need]:
    """The spec's dataset; for MUSDB18 the build command of both protocols (the spec's own listed first)."""
    from sag_bench.datasets.manifest import DATASET_MANIFEST
    from sag_bench.runner.run import OFFLINE_BUILDERS

    data_dir = Path(spec.data.dir)
    present = (data_dir / DATASET_MANIFEST).is_file()
    if spec.data.name == "musdb18":
        own = spec.data.build.get("protocol", "fastsag")
        dirs = {own: str(data_dir), **{p: d for p, d in MUSDB_PROTOCOLS.items() if p != own}}
        return [Need(f"MUSDB18 clips, {protocol} protocol", out,
                     f"sag-bench data build musdb18 --root $MUSDB_PATH --protocol {protocol} --out {out}  "
                     f"(MUSDB18 or MUSDB18-HQ from https://sigsep.github.io/datasets/musdb.html)",
                     (Path(out) / DATASET_MANIFEST).is_file(), [spec.name if protocol == own else "the other protocol"])
                for protocol, out in dirs.items()]
    if spec.data.name in OFFLINE_BUILDERS:
        command = "built offline by `sag-bench run` itself"
    elif spec.data.name == "folder":
        command = f"sag-bench data build folder --src SONGS_DIR --out {data_dir}"
    else:
        command = f"sag-bench data build {spec.data.name} --out {data_dir}"
    return [Need(f"dataset {spec.data.name}", str(data_dir), command, present or spec.data.name in OFFLINE_BUILDERS,
                 [spec.name])]


def spec_needs(spec) -> list[Need]:
    """Everything ``spec`` needs, each weight once with every user named."""
    from sag_bench.evaluation.degradation import fixed_backbone, role_for

    found: dict[str, Need] = {}

    def add(needs: list[Need], user: str) -> None:
        for need in needs:
            kept = found.setdefault(need.location, need)
            if user not in kept.users:
                kept.users.append(user)

    for need in data_needs(spec):
        found[need.location] = need
    for system in spec.systems:
        if need := checkpoint_need(system):
            add([need], system.key)
        for backbone in system.backbones:
            add(backbone_needs(backbone), system.key)
    for system in spec.systems:  # a fixed backbone path needs its weights; "vocoder"/"codec:N" use the system's own
        if backbone := fixed_backbone(role_for(spec.protocol.degrade, system.name)):
            add(backbone_needs(backbone), "reference mixes")
    if spec.data.name == "folder" or spec.data.build.get("vocals") == "separated":
        add(backbone_needs("htdemucs"), "building the dataset (Demucs separation)")
    for embedder in spec.evaluation.embedders:
        add(embedder_needs(embedder), f"FAD {embedder}")
    for embedder in spec.evaluation.apa_embedder_names() if spec.evaluation.apa else []:
        add(embedder_needs(embedder), f"APA {embedder}")
    return list(found.values())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list (and check) every weight and dataset a spec needs",
                                   description="Each pretrained weight, checkpoint and dataset of a spec, once, "
                                               "with where it lands and the exact command that fetches it.")
    parser.add_argument("spec", help="spec file, or a built-in spec name (tiny, table1, table2)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sag_bench.errors import UserError
    from sag_bench.runner.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as error:
        raise UserError(str(error)) from None
    needs = spec_needs(spec)
    print(f"spec {spec.name} ({spec.source}): {len(needs)} things needed")
    for need in needs:
        print("\n".join(need.lines()))
    missing = sum(not need.present for need in needs)
    print(f"{len(needs) - missing} present, {missing} missing" + (" (nothing is downloaded by this command)"
                                                                  if missing else ""))
    return 1 if missing else 0
