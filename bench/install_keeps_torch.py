"""Does ``pip install -e .`` into an environment that already holds torch keep that torch?

Builds a throw-away venv whose site-packages see an existing environment (``--env``, default: the shared .venv)
through a ``.pth`` file, then asks pip what ``pip install -e REPO`` would do there, with ``--dry-run --report``
and ``--no-index`` (nothing is downloaded; a requirement the environment cannot satisfy fails the resolution).
Prints the torch pip finds installed, every package pip would install or replace, and checks that torch,
torchaudio and torchvision are not among them. Then checks that the declared ranges accept the torch 2.x releases
a GPU box commonly holds (so the same resolution keeps them too) and reports which of those the previous exact
pin (``torch==2.11.0``) would have replaced.

    python bench/install_keeps_torch.py [--env /work/main/.venv] [--repo .]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

TORCH_FAMILY = ("torch", "torchaudio", "torchvision")
# torch releases found on CUDA boxes (with the torchaudio of the same release line).
COMMON_TORCH = ("2.3.1", "2.4.1", "2.5.1", "2.6.0", "2.7.1", "2.8.0", "2.9.1", "2.10.0", "2.11.0")
PREVIOUS_PIN = Requirement("torch==2.11.0")


def site_packages(env: Path) -> Path:
    """The site-packages folder of the venv ``env``."""
    found = sorted(env.glob("lib/python3.*/site-packages"))
    if not found:
        raise SystemExit(f"{env}: no lib/python3.*/site-packages (not a venv)")
    return found[0]


def dry_run(env: Path, repo: Path, work: Path) -> dict:
    """pip's JSON report of ``pip install -e repo`` in a fresh venv layered over ``env``."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site_packages(venv) / "existing-env.pth").write_text(f"{site_packages(env)}\n")
    report = work / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--dry-run",
                    "--no-index", "--no-build-isolation", "--quiet", "--report", str(report), "-e", str(repo)],
                   check=True)
    return json.loads(report.read_text())


def installed_version(env: Path, name: str) -> str | None:
    """The version of ``name`` installed in ``env`` (from its dist-info), or None."""
    for info in site_packages(env).glob("*.dist-info"):
        dist, _, version = info.name.removesuffix(".dist-info").partition("-")
        if dist.lower().replace("_", "-") == name:
            return version
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, default=Path("/work/main/.venv"), help="existing environment (a venv)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="sag-bench checkout")
    args = parser.parse_args()

    torch_before = installed_version(args.env, "torch")
    print(f"existing environment {args.env}: torch {torch_before}")
    with tempfile.TemporaryDirectory() as work:
        report = dry_run(args.env, args.repo.resolve(), Path(work))
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
    print("pip install -e . would install: " + (", ".join(f"{n}=={v}" for n, v in sorted(planned.items())) or "-"))
    replaced = [name for name in TORCH_FAMILY if name in planned]
    ok = not replaced
    print(f"torch family kept: {'yes' if ok else 'NO, pip would replace ' + ', '.join(replaced)}")

    declared = tomllib.loads((args.repo / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(Requirement(d) for d in declared if Requirement(d).name == "torch")
    accepted = [v for v in COMMON_TORCH if Version(v) in torch_req.specifier]
    pinned_out = [v for v in COMMON_TORCH if Version(v) not in PREVIOUS_PIN.specifier]
    print(f"declared {torch_req}: keeps torch {', '.join(accepted)}")
    print(f"previous pin {PREVIOUS_PIN}: would have replaced torch {', '.join(pinned_out)}")
    ok &= accepted == list(COMMON_TORCH)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
