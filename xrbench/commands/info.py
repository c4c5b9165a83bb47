"""``xrbench info MODEL``: the metadata and the exact preprocessing an encoder will be run with."""
from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("info", help="show a model's metadata and the preprocessing that will be used")
    p.add_argument("model", help="registered name or <prefix>:<path> (xrbench list models)")
    p.add_argument("--weights", help="local weights (file or folder), as for xrbench run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrbench.models import create_encoder
    from xrbench.models.checks import check_meta, expected_range

    enc = create_encoder(args.model, weights=args.weights)
    m = enc.meta
    check_meta(m)
    low, high = expected_range(m)
    info = {**m.to_dict(), "grid": m.grid, "preprocessing": m.preprocessing(),
            "normalised_range": [[round(float(a), 4) for a in low], [round(float(b), 4) for b in high]]}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    width = max(len(k) for k in info)
    if info.get("patch_dim") is None:  # None means "as wide as the global feature", not "unknown"
        info["patch_dim"] = f"{m.embed_dim} (= embed_dim)"
    for k, v in info.items():
        if k != "preprocessing":
            print(f"{k:{width}s}  {v}")
    print("\npreprocessing (applied by xrbench from this metadata, before the first batch is checked):")
    pre = m.preprocessing()
    print(f"  read image -> float [0, 1] ({m.bit_depth}: integer pixels / (2^bits - 1); DICOM via VOI LUT)")
    print(f"  {pre['resize']} to {m.input_size} x {m.input_size}, grey -> {m.in_chans} channel(s)")
    print(f"  scale to {list(m.value_range)}, then (v - {list(m.mean)}) / {list(m.std)}")
    print(f"  expected normalised range per channel: {info['normalised_range'][0]} .. {info['normalised_range'][1]}")
    return 0
