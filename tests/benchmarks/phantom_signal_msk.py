"""Is the signal in the musculoskeletal phantoms learnable, and not trivially so? (a measurement)

Frozen encoders, probes on L2-normalised global features, hyper-parameter chosen on val, scored on
a held-out test set:

* bone age (hand phantom): ridge regression -> MAE in months, against a mean predictor;
* MURA abnormal and FracAtlas fractured (limb phantoms): logistic regression -> AUROC.

Encoders: ImageNet efficientnet-lite0 and a random-init ViT-B/16 (the helpers of
``phantom_signal_spine_knee.py``). A pretrained encoder should beat the mean predictor by far and
the random ViT clearly.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/phantom_signal_msk.py [--n 400] [--n-limbs 240] [--skip-vit]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _encoders import encode, signal_encoders  # noqa: E402
from phantom_signal_spine_knee import auroc, probe  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

from xrbench.data.phantom.hand import generate_hands  # noqa: E402
from xrbench.data.phantom.limbs import generate_fracatlas, generate_studies  # noqa: E402


def splits(groups: np.ndarray) -> np.ndarray:
    """60/20/20 train/val/test as 0/1/2 by group (a MURA study's views stay together), seeded."""
    unique = np.unique(groups)
    n = len(unique)
    s = np.array([0] * (n * 6 // 10) + [1] * (n * 2 // 10))
    s = np.random.default_rng(0).permutation(np.concatenate([s, [2] * (n - len(s))]))
    return s[np.searchsorted(unique, groups)]


def ridge_mae(feats: np.ndarray, y: np.ndarray, split: np.ndarray) -> tuple[float, float]:
    """Ridge alpha chosen on val by MAE, refit on train+val; returns (val MAE, test MAE)."""
    tr, va, te = split == 0, split == 1, split == 2
    scores = []
    for alpha in np.logspace(-4, 2, 13):
        pred = Ridge(alpha=alpha).fit(feats[tr], y[tr]).predict(feats[va])
        scores.append((float(np.abs(pred - y[va]).mean()), alpha))
    best, alpha = min(scores)
    pred = Ridge(alpha=alpha).fit(feats[tr | va], y[tr | va]).predict(feats[te])
    return best, float(np.abs(pred - y[te]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400, help="hand images")
    ap.add_argument("--n-limbs", type=int, default=240, help="MURA and FracAtlas images each (0: skip)")
    ap.add_argument("--skip-vit", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    t = time.time()
    hands = generate_hands(args.n, seed=0)
    age = np.array([h.bone_age for h in hands])
    split = splits(np.arange(args.n))
    te = split == 2
    mean_mae = float(np.abs(age[split < 2].mean() - age[te]).mean())
    print(f"hands: {args.n} in {time.time() - t:.0f}s; bone age mean {age.mean():.1f} sd {age.std():.1f} months; "
          f"mean predictor test MAE {mean_mae:.1f}")
    limbs = {}
    if args.n_limbs:
        t = time.time()
        studies = generate_studies(args.n_limbs, seed=0)
        mura = [(c, k) for k, s in enumerate(studies) for c in s.images]
        frac = generate_fracatlas(args.n_limbs, seed=0)
        limbs = {"MURA abnormal": ([c.image for c, _ in mura], np.array([int(bool(c.findings)) for c, _ in mura]),
                                   np.array([k for _, k in mura])),
                 "FracAtlas fractured": ([c.image for c in frac], np.array([int(c.fractured) for c in frac]),
                                         np.arange(len(frac)))}
        print(f"limbs: {2 * args.n_limbs} in {time.time() - t:.0f}s; positive share "
              + ", ".join(f"{k} {v[1].mean():.2f}" for k, v in limbs.items()))

    for name, build in signal_encoders(args.skip_vit).items():
        model = build()
        t = time.time()
        val_mae, test_mae = ridge_mae(encode(model, [h.image for h in hands]), age, split)
        line = f"{name}: bone age ridge MAE test {test_mae:.1f} (val {val_mae:.1f}) months"
        for task, (images, y, groups) in limbs.items():
            val_auc, test_auc = probe(encode(model, images), y, splits(groups), auroc)
            line += f"; {task} AUROC test {test_auc:.3f} (val {val_auc:.3f})"
        print(line + f"; encode+probe {time.time() - t:.0f}s")


if __name__ == "__main__":
    main()
