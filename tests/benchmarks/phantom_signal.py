"""Does the synthetic chest phantom separate encoders? (a measurement, not a unit test)

A random-init ViT-B and the ImageNet EfficientNet-Lite0 encode the same phantom images (224 px);
a linear probe (logistic regression on L2-normalised global features, C chosen on a patient-
disjoint val split) is scored by macro AUROC on the 5 CheXpert competition labels, over several
patient-disjoint train/test splits. A phantom with learnable, non-trivial signal gives the random
ViT roughly 0.55-0.75 and the pretrained CNN clearly more; shuffled labels give ~0.5.

    python tests/benchmarks/phantom_signal.py --n 260
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from _encoders import encode, signal_encoders  # noqa: E402

from xrbench.data.phantom.chest import generate_chest  # noqa: E402

LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def _split(patients: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the samples whose patient falls in a random ``frac`` of patients."""
    uniq = np.unique(patients)
    chosen = set(rng.choice(uniq, size=max(1, round(frac * len(uniq))), replace=False))
    return np.array([p in chosen for p in patients])


def _macro_auc(y: np.ndarray, score: np.ndarray) -> list[float]:
    return [roc_auc_score(y[:, j], score[:, j]) if 0 < y[:, j].sum() < len(y) else np.nan
            for j in range(y.shape[1])]


def probe(feats: np.ndarray, y: np.ndarray, patients: np.ndarray, *, repeats: int, test_frac: float,
          seed: int) -> np.ndarray:
    """Per-label test AUROC [repeats, labels] of a one-vs-rest logistic probe (C chosen on val)."""
    rng = np.random.default_rng(seed)
    grid = np.logspace(-2, 3, 6)
    result = []
    for _ in range(repeats):
        test = _split(patients, test_frac, rng)
        val = _split(patients[~test], 0.25, rng)
        tr_idx, te_idx = np.flatnonzero(~test), np.flatnonzero(test)
        fit_idx, val_idx = tr_idx[~val], tr_idx[val]
        scores = np.zeros((len(te_idx), y.shape[1]))
        for j in range(y.shape[1]):
            if y[fit_idx, j].min() == y[fit_idx, j].max() or y[tr_idx, j].min() == y[tr_idx, j].max():
                scores[:, j] = 0.0
                continue
            best, best_c = -1.0, grid[0]
            for c in grid:
                clf = LogisticRegression(C=c, max_iter=2000).fit(feats[fit_idx], y[fit_idx, j])
                if 0 < y[val_idx, j].sum() < len(val_idx):
                    auc = roc_auc_score(y[val_idx, j], clf.decision_function(feats[val_idx]))
                    if auc > best:
                        best, best_c = auc, c
            clf = LogisticRegression(C=best_c, max_iter=2000).fit(feats[tr_idx], y[tr_idx, j])
            scores[:, j] = clf.decision_function(feats[te_idx])
        result.append(_macro_auc(y[te_idx], scores))
    return np.array(result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=260)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="patient-disjoint train/test splits averaged")
    ap.add_argument("--test-frac", type=float, default=0.23)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-vit", action="store_true", help="only the pretrained CNN (quick look)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    cases = generate_chest(args.n, seed=args.seed)
    gen_s = time.perf_counter() - t0
    images = np.stack([c.image for c in cases]).astype(np.float32)
    y = np.array([[float(name in c.findings) for name in LABELS] for c in cases])
    patients = np.array([c.patient for c in cases])
    print(f"{args.n} images ({len(set(patients))} patients) in {gen_s:.1f} s ({1000 * gen_s / args.n:.1f} ms/image); "
          "prevalence " + ", ".join(f"{n} {y[:, j].mean():.2f}" for j, n in enumerate(LABELS)))

    shuffled = y[np.random.default_rng(args.seed + 1).permutation(len(y))]
    for name, make in signal_encoders(args.skip_vit).items():
        t0 = time.perf_counter()
        feats = encode(make(), images)
        enc_s = time.perf_counter() - t0
        auc = probe(feats, y, patients, repeats=args.repeats, test_frac=args.test_frac, seed=args.seed)
        null = probe(feats, shuffled, patients, repeats=args.repeats, test_frac=args.test_frac, seed=args.seed)
        per_label = np.nanmean(auc, 0)
        macro = np.nanmean(auc, 1)
        print(f"{name:34s} macro AUROC {macro.mean():.3f} ± {macro.std():.3f} (over {args.repeats} splits)  "
              f"shuffled labels {np.nanmean(null):.3f}  [encode {enc_s:.0f} s]")
        print("    " + "  ".join(f"{n} {a:.3f}" for n, a in zip(LABELS, per_label)))


if __name__ == "__main__":
    main()
