"""``sag-bench fad MODEL BASELINE EVAL`` (fadtk's order; ``--embedder MODEL BASELINE EVAL`` also works): Frechet
Audio Distance between two folders of audio."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CACHE_ENV = "SAG_BENCH_CACHE"


def default_cache() -> Path:
    """The embedding cache folder: ``$SAG_BENCH_CACHE``, else the user cache directory (``~/.cache/sag-bench`` on
    Linux, ``$XDG_CACHE_HOME/sag-bench`` when set; the platform's cache folder elsewhere)."""
    import os

    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sag-bench", appauthor=False))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fad", help="FAD between two folders (fadtk embedders or offline ones)",
                                   description="Frechet Audio Distance between the audio files of two folders.")
    parser.add_argument("folders", nargs="+", metavar="MODEL BASELINE EVAL",
                        help="embedder (dsp-spectral, crepe-tiny, or a fadtk model: vggish, MERT-v1-95M-7, "
                             "clap-laion-music...), reference audio folder, evaluated audio folder")
    parser.add_argument("--embedder", help="the embedder as an option (then give only BASELINE EVAL)")
    parser.add_argument("--inf", action="store_true", help="also compute FAD-inf (seeded)")
    parser.add_argument("--per-clip", action="store_true", help="also the FAD of each evaluated clip")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="95%% CI from N bootstrap resamples of the evaluated clips (default: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cache", type=Path,
                        help=f"embedding cache folder, keyed by file content (default: ${CACHE_ENV}, else the user "
                             f"cache folder, {default_cache()})")
    parser.add_argument("--download", action="store_true",
                        help="let fadtk's loaders download missing weights (needs network)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.set_defaults(handler=run)


def positional(args: argparse.Namespace) -> tuple[str, Path, Path]:
    """(model, baseline folder, eval folder) from ``MODEL BASELINE EVAL`` or ``--embedder MODEL BASELINE EVAL``."""
    from sag_bench.errors import UserError

    given = ([args.embedder] if args.embedder else []) + list(args.folders)
    if len(given) != 3:
        raise UserError(f"fad takes MODEL BASELINE EVAL (or --embedder MODEL BASELINE EVAL), got: {' '.join(given)}")
    return given[0], Path(given[1]), Path(given[2])


def run(args: argparse.Namespace) -> int:
    from sag_bench.errors import UserError
    from sag_bench.evaluation.embedders import load_embedder
    from sag_bench.evaluation.fad import audio_files, score

    args.embedder, args.ref_dir, args.eval_dir = positional(args)
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, not {args.bootstrap}")
    ref, evaluated = audio_files(args.ref_dir), audio_files(args.eval_dir)
    embedder = load_embedder(args.embedder, device=args.device, allow_download=args.download)
    try:
        result = score(ref, evaluated, embedder, args.cache or default_cache(), inf=args.inf, per_clip=args.per_clip,
                       bootstrap=args.bootstrap, seed=args.seed, batch_size=args.batch_size, device=args.device)
    except ValueError as error:
        raise UserError(f"{args.eval_dir}: {error}") from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return 0
    line = f"FAD[{result.embedder}] = {result.score:.6f}"
    if result.ci_low is not None:
        line += f"  95% CI [{result.ci_low:.6f}, {result.ci_high:.6f}] ({result.bootstrap} resamples)"
    if result.fad_inf is not None:
        line += f"  FAD-inf = {result.fad_inf:.6f} (R^2 {result.fad_inf_r2:.3f})"
    print(line)
    print(f"frames: reference {result.n_ref_frames} ({result.n_ref_clips} clips), evaluated {result.n_eval_frames} "
          f"({result.n_eval_clips} clips), {result.dim} dims")
    for clip, value in sorted(result.per_clip.items()):
        print(f"  {clip}\t{value:.6f}")
    if result.warning:
        print(f"warning: {result.warning}")
    return 0
