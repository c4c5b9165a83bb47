"""``xrbench run``: evaluate one model on tasks or suites, write records and the leaderboard."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not 0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(f"label fractions must lie in (0, 1], got {text!r}")
    return vals


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _data_override(text: str) -> tuple[str, Path]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), Path(v).expanduser()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def register(sub) -> None:
    r = sub.add_parser("run", help="evaluate one model on tasks or suites")
    r.add_argument("--model", required=True, help="registered name (xrbench list models) or an adapter: timm:ARCH, hf:DIR, "
                   "open_clip:DIR, torchscript:FILE, module:pkg.mod:factory (docs/models.md)")
    r.add_argument("--weights", help="local weights: a .safetensors or .pt file (loaded with weights_only=True), "
                   "or a folder for the named HF / open_clip models")
    r.add_argument("--allow-partial", action="store_true", help="load a checkpoint with missing or "
                   "unexpected keys instead of refusing it (the keys are recorded in every result)")
    r.add_argument("--text-weights", type=Path, default=None, metavar="DIR",
                   help="mxr0's report tower: a local PubMedBERT-format folder (default: "
                   "$XRBENCH_MXR0_TEXT_WEIGHTS)")
    r.add_argument("--task", required=True, help="task, suite, 'all', or a comma-separated list")
    r.add_argument("--include", action="append", default=[], metavar="DIR",
                   help="extra folder of task YAMLs (and suites/)")
    r.add_argument("--data-root", type=Path, help="folder holding the datasets (DIR/<dataset>/ or the "
                   "dataset itself); without it the synthetic demo is used")
    r.add_argument("--data", action="append", type=_data_override, default=[], metavar="DATASET=PATH",
                   help="root of one dataset (repeatable)")
    r.add_argument("--output", type=Path, default=Path("results"), metavar="DIR",
                   help="where records, predictions and leaderboard.csv go (default: results)")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    r.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32), 0 for automatic (on CUDA "
                   "halved for the rest of the run on out-of-memory)")
    r.add_argument("--workers", type=int, default=min(4, max(0, (os.cpu_count() or 1) - 1)),
                   help="image-reading processes (0: in the main process; default: CPUs - 1, at most 4)")
    r.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    r.add_argument("--seeds", type=_ints, default=None, help="several seeds, e.g. 0,1,2")
    r.add_argument("--label-fraction", type=_floats, default=(1.0,), help="e.g. 0.01,0.1,1.0")
    r.add_argument("--limit", type=int, default=None, help="at most N images per split (smoke tests)")
    r.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates for CIs: 0 (none) or 100..100000 (default 1000)")
    r.add_argument("--no-pixel-cache", dest="pixel_cache", action="store_false",
                   help="decode every image again instead of reading the decoded pixels cached by an "
                   "earlier encoder of the same input size")
    r.add_argument("--compile", action="store_true", help="torch.compile the encoder (slow start, faster "
                   "forward on large splits)")
    r.add_argument("--pretraining-manifest", type=Path, default=None, metavar="FILE",
                   help="CSV of the encoder's pretraining images (file, patient, study or sha256 columns); "
                        "each task's test split is checked against it (docs/results.md)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrbench.commands import preflight
    from xrbench.tasks.catalog import TaskCatalog

    # everything that can be wrong with the command line is found before any work (preflight.py)
    seeds = preflight.check_options(args)
    specs = TaskCatalog(args.include).resolve(args.task)
    plan = preflight.check_run(args, specs, seeds)

    from xrbench.data.demo import xrbench_home
    from xrbench.features import distributed as dist
    from xrbench.models.lazy import create_run_encoder
    from xrbench.results.summary import summary_table
    from xrbench.runner import RunConfig, Runner

    # unknown name -> exit 2 before any work; built only when a forward pass is needed (models/lazy.py)
    encoder = create_run_encoder(args.model, weights=args.weights, cache_dir=xrbench_home() / "models",
                                 **({"allow_partial": True} if args.allow_partial else {}),
                                 **({"text_weights": str(args.text_weights)} if args.text_weights else {}))
    preflight.check_encoder(encoder.meta, plan.real)
    device = preflight.check_device(dist.init_from_env(plan.device))  # under torchrun: this rank's GPU
    cfg = RunConfig(output=args.output, data_root=args.data_root, data_roots=dict(args.data),
                    device=device, batch_size=args.batch_size, num_workers=args.workers,
                    seeds=plan.seeds, label_fractions=args.label_fraction, limit=args.limit,
                    n_boot=args.bootstrap, pixel_cache=args.pixel_cache, compile=args.compile,
                    pretraining_manifest=args.pretraining_manifest)
    demo = [d for d in dict.fromkeys(s.dataset for s in specs) if d not in plan.real]
    if demo:  # also when --data covers only some of the tasks' datasets
        print(f"[xrbench] no --data-root{'' if not args.data else ' or --data'} for "
              f"{', '.join(demo)}: using the SYNTHETIC demo data (phantoms in the official "
              "layouts); numbers are real numbers on synthetic images", file=sys.stderr)
    records = Runner(encoder, cfg).run(specs)
    if dist.is_main():
        print(summary_table(records))
        print(f"\nleaderboard: {plan.leaderboard}")
    return 0


