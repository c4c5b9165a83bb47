"""``xrbench bench``: how close extraction runs to this machine's limits, for one model and dataset.

Each stage is measured alone, then together: pure forward on pre-loaded tensors (the compute
limit), decode + pad + resize on all cores (the decode limit), reading the pixel cache (the decode
side of a second encoder at the same input size), and end to end with and without the cache. The
end-to-end rate is reported as a fraction of the lower of the two limits it runs against: 1.0
means the pipeline hides the other stage completely. On a CPU device the forward pass and the
decode workers share the same cores, so their costs add and the rate cannot exceed
``1 / (1/forward + 1/decode)``; that shared-cores limit and the fraction of it reached are
reported too (on CUDA the forward runs on the GPU and the lower limit is the one that applies).
Rates start after the first batch (worker start-up and warm-up are not throughput).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def register(sub) -> None:
    b = sub.add_parser("bench", help="measure forward, decode and end-to-end extraction rates on this machine")
    b.add_argument("--model", required=True, help="as for xrbench run: a registered name or an adapter prefix")
    b.add_argument("--weights", help="local weights, as for xrbench run")
    b.add_argument("--dataset", default="chexpert", help="dataset (its demo unless --data-root; default chexpert)")
    b.add_argument("--data-root", type=Path, help="the dataset's folder (default: the synthetic demo)")
    b.add_argument("--limit", type=int, default=None, help="at most N images")
    b.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    b.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode workers (default: all cores)")
    b.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    b.add_argument("--source-size", type=_size, default=None, metavar="HxW",
                   help="first rewrite each image as a JPEG of this size (e.g. 3000x2500, MIMIC-CXR-JPG's "
                        "typical; quality 95, detector-like noise) to stand in for full-size radiographs: "
                        "the demo's 256-px phantoms decode faster than any real file")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 3000x2500, got {text!r}") from None
    if min(h, w) < 16 or max(h, w) > 10000:
        raise argparse.ArgumentTypeError(f"sizes must lie in [16, 10000], got {text!r}")
    return h, w


def full_size_copies(samples, size: tuple[int, int], folder: Path) -> list:
    """The samples with their images rewritten as ``size`` JPEGs (quality 95): each image resized
    bicubically, plus Gaussian noise of 1.5% of the range at full resolution (a real detector's
    grain; without it an upscaled phantom compresses, and decodes, far faster than a radiograph)."""
    from dataclasses import replace

    import numpy as np
    from PIL import Image

    from xrbench.data.images import read_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i, s in enumerate(samples):
        img = Image.fromarray((read_image(s.image) * 255).astype(np.uint8)).resize(size[::-1], Image.BICUBIC)
        px = np.asarray(img, dtype=np.float32) + rng.normal(0, 0.015 * 255, (size[0], size[1])).astype(np.float32)
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(path, quality=95)
        out.append(replace(s, image=path))
    return out


def _rate(batches, count=lambda b: len(b[0]), work=None) -> float:
    """Images per second over ``batches`` after the first (``count`` images each; ``work`` done on each)."""
    n, t0 = 0, None
    for b in batches:
        if work is not None:
            work(b)
        k = count(b)
        if t0 is None:
            t0 = time.perf_counter()
            continue
        n += k
    return n / (time.perf_counter() - t0) if t0 is not None and n else float("nan")


def measure(encoder, samples, *, device: str, batch_size: int, workers: int, work_dir: Path) -> dict:
    import torch

    from xrbench.features.extract import iter_batches, pixel_loader
    from xrbench.features.pixels import PixelCache, normalise

    meta, idx = encoder.meta, list(range(len(samples)))
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    loader = lambda **kw: pixel_loader(samples, idx, meta.input_size, batch_size=batch_size,  # noqa: E731
                                       num_workers=workers, pin_memory=cuda, **kw)
    decode = _rate(loader())

    enc = encoder.to(device).eval()
    first = next(iter(loader()))[0][:batch_size]
    x = normalise(first.to(device), meta)
    x = torch.cat([x] * -(-batch_size // len(x)))[:batch_size]
    n_fwd = max(3, -(-len(samples) // batch_size))

    def forwards():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            for _ in range(n_fwd):
                out = enc.encode(x, kinds=["global"])
                sync()
                yield out["global"]
    forward = _rate(forwards(), count=len)

    cache = PixelCache(work_dir / "pixels")
    part = cache.partial("bench")
    pw, pg, _ = part.open(len(samples), (meta.input_size, meta.input_size), "uint16")
    at = [0]

    def sink(px, geo):
        pw.write(at[0], px)
        pg.write(at[0], geo)
        at[0] += len(px)
    kw = dict(kinds=["global"], device=device, batch_size=batch_size, num_workers=workers, desc="bench")
    e2e = _rate(iter_batches(enc, samples, idx, sink=sink, **kw), count=lambda b: len(b[1]))
    part.commit(pw, pg, len(samples))
    part.publish([s.id for s in samples], {"bench": True})
    cached = cache.lookup("bench", [s.id for s in samples])
    cache_read = _rate(loader(cached=cached), work=lambda b: (normalise(b[0].to(device, non_blocking=cuda), meta), sync()))
    e2e_cached = _rate(iter_batches(enc, samples, idx, cached=cached, **kw), count=lambda b: len(b[1]))
    lim, lim_c = min(forward, decode), min(forward, cache_read)
    shared = None if cuda else 1 / (1 / forward + 1 / decode)
    return {"model": meta.name, "input_size": meta.input_size, "images": len(samples), "device": device,
            "batch_size": batch_size, "workers": workers, "cpus": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "rates_img_s": {"forward": forward, "decode": decode, "end_to_end": e2e,
                            "pixel_cache_read": cache_read, "end_to_end_cached": e2e_cached,
                            **({} if shared is None else {"shared_cores_limit": shared})},
            "bound": "compute" if forward <= decode else "decode",
            "ratios": {"end_to_end_vs_limit": e2e / lim, "end_to_end_cached_vs_limit": e2e_cached / lim_c,
                       "cache_read_vs_decode": cache_read / decode,
                       **({} if shared is None else {"end_to_end_vs_shared_cores_limit": e2e / shared})},
            "ms_per_image": {"forward": 1000 / forward, "decode_per_core": 1000 * max(workers, 1) / decode}}


def run(args: argparse.Namespace) -> int:
    import tempfile

    import xrbench.data.datasets  # noqa: F401  (registers loaders)
    from xrbench.commands.run import default_device
    from xrbench.data.demo import dataset_root
    from xrbench.models import create_encoder
    from xrbench.registry import DATASETS

    loader = DATASETS.get(args.dataset)(args.data_root or dataset_root(args.dataset, None), seed=0)
    samples = loader.samples()[:args.limit] if args.limit else loader.samples()
    encoder = create_encoder(args.model, weights=args.weights)
    with tempfile.TemporaryDirectory(prefix="xrbench-bench-") as tmp:
        if args.source_size:
            samples = full_size_copies(samples, args.source_size, Path(tmp) / "images")
        res = measure(encoder, samples, device=args.device or default_device(), batch_size=args.batch_size,
                      workers=args.workers, work_dir=Path(tmp))
    res["dataset"] = args.dataset + ("" if args.data_root else " (synthetic demo)")
    if args.source_size:
        res["dataset"] += " rewritten as {}x{} JPEGs".format(*args.source_size)
        res["source_size"] = list(args.source_size)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    r, q = res["rates_img_s"], res["ratios"]
    print(f"{res['model']} at {res['input_size']} px on {res['dataset']}, {res['images']} images, {res['device']}, "
          f"batch {res['batch_size']}, {res['workers']} decode workers, {res['cpus']} CPUs, load {res['load_average']}")
    print(f"{'stage':34s} {'img/s':>10s}")
    for name, label in [("forward", "forward (pre-loaded tensors)"), ("decode", "decode + resize (all workers)"),
                        ("pixel_cache_read", "pixel-cache read + normalise"), ("end_to_end", "end to end (decoding)"),
                        ("end_to_end_cached", "end to end (pixel cache)")]:
        print(f"{label:34s} {r[name]:10.1f}")
    print(f"bound: {res['bound']}; end to end / min(forward, decode) = {q['end_to_end_vs_limit']:.2f}; "
          f"cached end to end / min(forward, cache read) = {q['end_to_end_cached_vs_limit']:.2f}; "
          f"cache read / decode = {q['cache_read_vs_decode']:.1f}x")
    if "shared_cores_limit" in r:
        print(f"forward and decode share the CPU: shared-cores limit 1/(1/forward + 1/decode) = "
              f"{r['shared_cores_limit']:.1f} img/s; end to end / that = "
              f"{q['end_to_end_vs_shared_cores_limit']:.2f}")
    return 0
