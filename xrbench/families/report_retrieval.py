"""Image <-> report retrieval (family ``report-retrieval``): one unit per study, R@k both ways.

- **Sides.** A study's image side is the mean of its images' global features (with MIMIC's
  default frontal views that is nearly always its one frontal image); its text side is its
  report's findings section, the impression when there are no findings.
- **Head.** An encoder with a text tower (``needs_encoder``; ``modalities`` has ``text``) is
  evaluated zero-shot: cosine of its ``global`` image features and ``encode_text`` embeddings,
  which live in one space. Otherwise the reports are embedded by a frozen text encoder
  (``protocol.args.text_encoder``, default ``minilm``, cached by :mod:`xrbench.features.text_store`)
  and a linear map W of the standardised, L2-normalised image features into the text space is
  learned on train with a symmetric InfoNCE loss (text side frozen). Temperature and weight decay
  are chosen on val by the mean of i2t and t2i R@5 (the val studies as gallery); test is scored once.
- **Gallery.** The whole test split (every test study is a query and a gallery item), fixed under
  the bootstrap: a resample draws queries, never gallery items; CIs resample studies.
- **Ties.** Identical reports (templated phantom texts, "No acute cardiopulmonary process.") cannot
  be told apart by any model, so a study whose report text equals the true one counts as a
  correct answer (its relevance class). Ties of the best relevant item with non-relevant items are
  broken at random in expectation: with ``rank`` = 1 + the non-relevant items scoring strictly
  higher, ``ties`` = those scoring equal and ``best`` = the relevant items at that score (several
  when duplicate reports embed identically), R@k is P(rank + U <= k), U the non-relevant items
  a uniformly random order puts before the first of the ``best`` (uniform on 0..ties when best
  is 1). A constant model thus scores chance (1 - C(G - r, k) / C(G, k) for r relevant items in
  a gallery of G; k / G when r is 1), not 1 (strict >) nor 0 (>=).
- **Prediction.** Per study: the top-10 study ids each way and the (rank, ties, best) of the true
  partner (a file without ``best`` is read with best = 1). The ranks are the prediction (a
  similarity row is too big to save); ``xrbench score`` takes them, checks them against the truth
  (the dataset's study ids and texts: the first relevant id in a top-10 must sit where the rank
  says) and re-aggregates them.
"""
from __future__ import annotations

import functools
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families.base import FAMILIES, HeadOutput, SplitData, TaskFamily, Unit
from xrbench.families.report_generation import REPORT_SAMPLES, report_text
from xrbench.features.text_store import TextFeatureStore
from xrbench.protocols.base import standardiser

KS = (1, 5, 10)
DIRECTIONS = ("i2t", "t2i")
METRIC_NAMES = tuple(f"{d}_r@{k}" for d in DIRECTIONS for k in KS) + ("mean_r",)
TOP = 10
PROTOCOL = "contrastive-linear"
DEFAULTS = {"text_encoder": "minilm", "temperatures": [0.05, 0.1], "weight_decays": [1e-4, 1e-2, 1.0],
            "steps": 150, "lr": 0.02, "batch_size": 1024, "zero_shot": True}


@functools.lru_cache(maxsize=4)
def text_encoder(name: str, device: str):
    """The frozen text encoder ``name``, built once per process (loading BERT weights takes seconds)."""
    from xrbench.models.text import create_text_encoder

    return create_text_encoder(name, device=device)


def tower_ident(meta) -> dict:
    """What fixes an image encoder's own text-tower embeddings (their text-store identity)."""
    return {"name": f"{meta.name}:text-tower", "weights": meta.weights, "weights_sha256": meta.weights_sha256}


def ranks(sim: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rank, ties, best) of each query (row) of ``sim`` [Q, G]: relevant items are those of the
    query's relevance class (``cls`` gives the class of every query and item; sim is square);
    ``best`` counts the relevant items at the best relevant score."""
    rel = cls[:, None] == cls[None, :]
    best = np.where(rel, sim, -np.inf).max(1, keepdims=True)
    higher = ((sim > best) & ~rel).sum(1)
    ties = ((sim == best) & ~rel).sum(1)
    return higher + 1, ties, ((sim == best) & rel).sum(1)


def recall_at(rank: np.ndarray, ties: np.ndarray, k: int, best: np.ndarray | int = 1) -> np.ndarray:
    """P(a relevant item within the top k) of each query, ties broken uniformly at random: the
    tied group holds ``ties`` non-relevant and ``best`` relevant items, and P(the first j places of
    it are all non-relevant) = C(ties, j) / C(ties + best, j), with j = k - rank + 1 places left."""
    rank, ties = np.asarray(rank, dtype=np.float64), np.asarray(ties, dtype=np.float64)
    best = np.broadcast_to(np.asarray(best, dtype=np.float64), rank.shape)
    j = k - rank + 1
    miss = np.ones_like(rank)
    for i in range(k):  # j <= k
        left = ties - i  # non-relevant items of the group still unplaced; their share of the rest
        share = np.divide(left, left + best, out=np.zeros_like(left), where=left > 0)
        miss = np.where(i < j, miss * share, miss)
    return np.where(j > 0, 1.0 - miss, 0.0)


def info_nce_fit(x: np.ndarray, t: np.ndarray, *, temperature: float, weight_decay: float, steps: int, lr: float,
                 batch_size: int, seed: int, device: str) -> np.ndarray:
    """W [D, E] minimising the symmetric InfoNCE of normalise(x W) against the frozen texts ``t``."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.from_numpy(x).to(device)
    ts = torch.from_numpy(t).to(device)
    w = (torch.randn(x.shape[1], t.shape[1], generator=g) / x.shape[1] ** 0.5).to(device).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    n = len(x)
    for _ in range(steps):
        idx = torch.randperm(n, generator=g)[:batch_size].to(device) if n > batch_size else slice(None)
        z = torch.nn.functional.normalize(xs[idx] @ w, dim=-1)
        logits = z @ ts[idx].T / temperature
        target = torch.arange(logits.shape[0], device=device)
        loss = 0.5 * (torch.nn.functional.cross_entropy(logits, target)
                      + torch.nn.functional.cross_entropy(logits.T, target)) + weight_decay * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().cpu().numpy()


def _normalise(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


@FAMILIES.register("report-retrieval")
class ReportRetrieval(TaskFamily):
    """Image <-> report retrieval over the studies of the test split (see the module docstring)."""

    name = "report-retrieval"
    needs_encoder: ClassVar[bool] = True
    kept_samples: ClassVar[str] = REPORT_SAMPLES

    def check(self) -> None:
        p = self.spec.protocol
        if p.name != PROTOCOL:
            raise ConfigError(f"key 'protocol.name': family 'report-retrieval' takes protocol '{PROTOCOL}', "
                              f"not {p.name!r}")
        unknown = sorted(set(p.args) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"key 'protocol.args': unknown {unknown}; protocol '{PROTOCOL}' takes "
                              f"{', '.join(DEFAULTS)}")
        if self.spec.features != "global":
            raise ConfigError(f"task {self.spec.name}: family 'report-retrieval' reads 'global' features, "
                              f"not {self.spec.features!r}")

    @classmethod
    def known_metrics(cls) -> list[str]:
        return list(METRIC_NAMES)

    @property
    def args(self) -> dict:
        return {**DEFAULTS, **self.spec.protocol.args}

    # -- data -----------------------------------------------------------------------------
    def has_target(self, sample: Sample) -> bool:
        return bool(report_text(sample))

    def target(self, sample: Sample) -> str:
        return sample.group or sample.id

    def units(self, samples: Sequence[Sample]) -> list[Unit]:
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(self.target(s), []).append(i)
        return [Unit(g, samples[r[0]].patient, g, r) for g, r in groups.items()]

    def prepare(self, splits: dict[str, list[Sample]]) -> None:
        """The test gallery: every test study's relevance class (index of its report text)."""
        test = splits["test"]
        classes: dict[str, int] = {}
        self.context = {"class": {u.id: classes.setdefault(report_text(test[u.rows[0]]), len(classes))
                                  for u in self.units(test)}}

    def truth(self, unit: Unit, samples: Sequence[Sample]) -> str:
        return unit.id

    # -- head -----------------------------------------------------------------------------
    def _study_arrays(self, split: SplitData) -> tuple[list[Unit], np.ndarray, list[str]]:
        units = self.units(split.samples)
        feats = np.asarray(split.features, dtype=np.float32)
        img = np.stack([feats[u.rows].mean(0) for u in units]) if units else feats[:0]
        return units, img, [report_text(split.samples[u.rows[0]]) for u in units]

    def _zero_shot(self) -> bool:
        enc = getattr(self, "encoder", None)
        return bool(self.args["zero_shot"]) and enc is not None and "text" in enc.meta.modalities

    def _embed(self, texts: list[str], device: str) -> tuple[np.ndarray, dict]:
        store = TextFeatureStore()
        if self._zero_shot():
            ident = tower_ident(self.encoder.meta)
            return store.get(ident, texts, self.encoder.encode_text), ident
        enc = text_encoder(str(self.args["text_encoder"]), device)
        ident = enc.meta.to_dict()
        return store.get(ident, texts, enc.encode), ident

    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        self.prepare({"test": test.samples})
        sides = {k: self._study_arrays(d) for k, d in (("train", train), ("val", val), ("test", test))}
        dev = device if device.startswith("cuda") else "cpu"
        txt = {}
        for k, (_, _, texts) in sides.items():
            txt[k], ident = self._embed(texts, dev)
        hp: dict[str, Any] = {"text_encoder": ident, "image_side": "mean of the study's images' global features"}
        if self._zero_shot():
            project = _normalise
            hp["mode"] = "zero-shot"
            val_score = self._score(project(sides["val"][1]), _normalise(txt["val"]), sides["val"][2])
        else:
            a = self.args
            mu, sd = standardiser(np.asarray(sides["train"][1], dtype=np.float64))

            def prep(x: np.ndarray) -> np.ndarray:
                return _normalise((x - mu) / sd).astype(np.float32)

            best = None
            for temp in a["temperatures"]:
                for wd in a["weight_decays"]:
                    w = info_nce_fit(prep(sides["train"][1]), txt["train"], temperature=float(temp),
                                     weight_decay=float(wd), steps=int(a["steps"]), lr=float(a["lr"]),
                                     batch_size=int(a["batch_size"]), seed=seed, device=dev)
                    s = self._score(_normalise(prep(sides["val"][1]) @ w), _normalise(txt["val"]), sides["val"][2])
                    if best is None or s > best[0]:  # ties keep the earlier (colder, weaker-decay) grid point
                        best = (s, temp, wd, w)
            val_score, temp, wd, w = best
            project = lambda x: _normalise(prep(x) @ w)  # noqa: E731
            hp.update(mode="linear-alignment", temperature=float(temp), weight_decay=float(wd),
                      steps=int(a["steps"]), lr=float(a["lr"]))
        units, img, texts = sides["test"]
        sim = project(img).astype(np.float64) @ _normalise(txt["test"]).astype(np.float64).T
        cls = np.array([self.context["class"][u.id] for u in units])
        ids = [u.id for u in units]
        out = {}
        for d, m in (("i2t", sim), ("t2i", sim.T)):
            r, t, b = ranks(m, cls)
            top = np.argsort(-m, axis=1, kind="stable")[:, :TOP]
            out[d] = (r, t, b, [[ids[j] for j in row] for row in top])
        preds = [{f"{d}_top": out[d][3][i] for d in DIRECTIONS}
                 | {f"{d}_{f}": int(out[d][k][i]) for d in DIRECTIONS
                    for k, f in ((0, "rank"), (1, "ties"), (2, "best"))}
                 for i in range(len(units))]
        return HeadOutput(preds, hp, float(val_score), {"gallery": len(units)})

    def _score(self, img: np.ndarray, txt: np.ndarray, texts: list[str]) -> float:
        """Mean of i2t and t2i R@5 on a split (val selection), the split's studies as gallery."""
        sim = img.astype(np.float64) @ txt.astype(np.float64).T
        cls = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)[1]
        def r5(m: np.ndarray) -> float:
            rank, ties, best = ranks(m, cls)
            return float(recall_at(rank, ties, 5, best).mean())

        return float(np.mean([r5(sim), r5(sim.T)]))

    # -- scorer ---------------------------------------------------------------------------
    def prediction_from_row(self, row: dict, *, path, line: int) -> Any:
        pred = super().prediction_from_row(row, path=path, line=line)
        keys = {f"{d}_{f}" for d in DIRECTIONS for f in ("top", "rank", "ties")}
        best = {f"{d}_best" for d in DIRECTIONS}  # optional: files written before it was saved
        if not isinstance(pred, dict) or not keys <= set(pred) <= keys | best:
            raise DataError(f"expected a prediction with keys {sorted(keys)}", path=path, row=line,
                            field="prediction")
        return pred

    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        """The true partner's (rank, ties) each way, checked against the top-10 and the truth."""
        cls = self.context["class"]
        n = len(cls)
        out = {}
        for d in DIRECTIONS:
            rank, ties, top = prediction[f"{d}_rank"], prediction[f"{d}_ties"], prediction[f"{d}_top"]
            best = prediction.get(f"{d}_best", 1)
            unknown = [g for g in top if g not in cls]
            if unknown:
                raise DataError(f"unit {truth}: {d} retrieved ids {unknown[:3]} are not test studies")
            if not (all(isinstance(v, int) for v in (rank, ties, best)) and 1 <= rank and 0 <= ties
                    and 1 <= best and rank + ties + best - 1 <= n):
                raise DataError(f"unit {truth}: {d} rank {rank!r}, ties {ties!r}, best {best!r}; expected "
                                f"integers with 1 <= rank, 1 <= best and rank + ties + best - 1 <= {n} "
                                f"(the gallery)")
            first = next((i + 1 for i, g in enumerate(top) if cls[g] == cls[truth]), None)
            ok = rank <= first <= rank + ties if first is not None else rank + ties > len(top)
            if not ok:
                raise DataError(f"unit {truth}: {d} rank {rank} (ties {ties}) disagrees with its top "
                                f"{len(top)}, where the first correct report is at {first}")
            out[f"{d}_rank"], out[f"{d}_ties"], out[f"{d}_best"] = rank, ties, best
        return out

    def _recalls(self, table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {f"{d}_r@{k}": recall_at(table[f"{d}_rank"], table[f"{d}_ties"], k, table.get(f"{d}_best", 1))
                for d in DIRECTIONS for k in KS}

    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        per = self._recalls(table)
        vals = {k: float(v[rows].mean()) if len(rows) else float("nan") for k, v in per.items()}
        vals["mean_r"] = float(np.mean(list(vals.values())))
        return {k: vals[k] for k in self.spec.metrics}

    def aggregate_weighted(self, table: dict[str, np.ndarray], weights: np.ndarray,
                           state: dict) -> dict[str, np.ndarray]:
        per = self._recalls(table)
        tot = weights.sum(1)
        vals = {k: weights @ v / tot for k, v in per.items()}
        vals["mean_r"] = np.mean(np.stack(list(vals.values())), axis=0)
        return {k: vals[k] for k in self.spec.metrics}
