"""The report decoder of :mod:`report_generation`: model, training with selection on val, decoding.

Kept apart so that the family's scorer (``xrbench score``, ``compare``) never imports torch.
The decoder is written out (not ``nn.TransformerDecoder``) for one reason: decoding caches each
layer's self-attention keys and values and the memory's cross-attention keys and values, so a
step costs one token, not the whole prefix.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrbench.families.report_generation import BOS, EOS, PAD, Vocab
from xrbench.protocols.base import standardiser


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.o = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, -1).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, -1)
        return self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        y = F.scaled_dot_product_attention(self._split(self.q(x)), k, v, is_causal=causal)
        return self.o(y.transpose(1, 2).reshape(x.shape))


class _Layer(nn.Module):
    """Pre-norm: causal self-attention, cross-attention to the image memory, feed-forward."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn, self.cross = _Attention(d, heads), _Attention(d, heads)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory_kv, cache=None):
        h = self.n1(x)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:  # one new token: attend to every cached position and itself
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        x = x + self.drop(self.self_attn(h, k, v, causal=cache is None))
        x = x + self.drop(self.cross(self.n2(x), *memory_kv))
        x = x + self.drop(self.ff(self.n3(x)))
        return x, (k, v)


class ReportDecoder(nn.Module):
    """Grid [B, h, w, D] -> memory (linear + 2D position) -> ``layers`` decoder layers -> word logits."""

    def __init__(self, n_vocab: int, feat_dim: int, grid: tuple[int, int], *, d_model: int, layers: int,
                 heads: int, ff_mult: int, max_len: int, dropout: float):
        super().__init__()
        self.proj = nn.Linear(feat_dim, d_model)
        self.row = nn.Parameter(torch.randn(grid[0], d_model) * 0.02)
        self.col = nn.Parameter(torch.randn(grid[1], d_model) * 0.02)
        self.mem_norm = nn.LayerNorm(d_model)
        self.tok = nn.Embedding(n_vocab, d_model, padding_idx=PAD)
        nn.init.normal_(self.tok.weight, std=0.02)  # GPT-2's scale: N(0, 1) would drown the positions
        self.pos = nn.Parameter(torch.randn(max_len + 1, d_model) * 0.02)
        self.layers = nn.ModuleList(_Layer(d_model, heads, ff_mult * d_model, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def memory_kv(self, grid: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        b, h, w, _ = grid.shape
        mem = self.proj(grid) + self.row[:, None, :] + self.col[None, :, :]
        mem = self.mem_norm(mem.reshape(b, h * w, -1))
        return [layer.cross.keys_values(mem) for layer in self.layers]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) @ self.tok.weight.T  # tied embeddings

    def forward(self, grid: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.memory_kv(grid)
        x = self.drop(self.tok(tokens) + self.pos[:tokens.shape[1]])
        for layer, mkv in zip(self.layers, kv):
            x, _ = layer(x, mkv)
        return self._logits(x)

    def step(self, token: torch.Tensor, t: int, kv: list, caches: list):
        """Logits of the next token after ``token`` at position ``t``; the caches grow by one."""
        x = self.tok(token)[:, None] + self.pos[t]
        new = []
        for layer, mkv, cache in zip(self.layers, kv, caches):
            x, c = layer(x, mkv, cache)
            new.append(c)
        return self._logits(x[:, 0]), new


@dataclass
class Fit:
    model: ReportDecoder
    norm: tuple[np.ndarray, np.ndarray]
    lr: float
    epochs: int
    val_score: float
    n_params: int
    curve: dict = field(default_factory=dict)


def _standardiser(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = standardiser(grids.reshape(-1, grids.shape[-1]).astype(np.float64))
    return mean.astype(np.float32), scale.astype(np.float32)


def _batch(ids: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(ids), max(map(len, ids))), PAD, dtype=torch.long)
    for i, seq in enumerate(ids):
        out[i, :len(seq)] = torch.tensor(seq)
    return out


def train_select(train, val, vocab: Vocab, *, select, seed: int, device: str, d_model: int, layers: int,
                 heads: int, ff_mult: int, max_len: int, lrs, epochs: int, eval_every: int, batch_size: int,
                 weight_decay: float, dropout: float) -> Fit:
    """Train one decoder per learning rate; keep the (lr, epoch) checkpoint with the best val score."""
    grids, refs, _ = train
    mean, std = _standardiser(grids)
    x = torch.from_numpy((grids - mean) / std)
    vx = (val[0] - mean) / std
    seqs = [vocab.encode(r, max_len) for r in refs]
    best: Fit | None = None
    curve: dict = {}
    for lr in lrs:
        torch.manual_seed(seed)
        model = ReportDecoder(len(vocab), grids.shape[-1], grids.shape[1:3], d_model=d_model, layers=layers,
                              heads=heads, ff_mult=ff_mult, max_len=max_len, dropout=dropout).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            for idx in torch.randperm(len(seqs), generator=gen).split(batch_size):
                tokens = _batch([seqs[i] for i in idx]).to(device)
                logits = model(x[idx].to(device), tokens[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                       ignore_index=PAD)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if epoch % eval_every == 0 or epoch == epochs:
                score = select(generate(model, None, vx, vocab, max_len=max_len, beam=1, batch_size=batch_size,
                                        device=device))
                curve[f"lr={lr:g},epoch={epoch}"] = round(score, 6)
                if best is None or score > best.val_score:
                    best = Fit(copy.deepcopy(model).cpu(), (mean, std), lr, epoch, score,
                               sum(p.numel() for p in model.parameters()))
    best.curve = curve
    return best


@torch.no_grad()
def generate(model: ReportDecoder, norm, grids: np.ndarray, vocab: Vocab, *, max_len: int, beam: int,
             batch_size: int, device: str) -> list[str]:
    """Decoded reports (greedy when ``beam`` is 1); ``norm`` None: grids are already standardised."""
    model = model.to(device).eval()
    if norm is not None:
        grids = (grids - norm[0]) / norm[1]
    out: list[str] = []
    for i in range(0, len(grids), batch_size):
        g = torch.from_numpy(np.ascontiguousarray(grids[i:i + batch_size], dtype=np.float32)).to(device)
        out += [vocab.decode(s) for s in _beam_search(model, g, max_len, beam)]
    return out


def _beam_search(model: ReportDecoder, grid: torch.Tensor, max_len: int, k: int) -> list[list[int]]:
    """Beam search on summed log-probabilities (k = 1: greedy); a finished beam only extends by <eos>."""
    b = grid.shape[0]
    kv = [(kk.repeat_interleave(k, 0), vv.repeat_interleave(k, 0)) for kk, vv in model.memory_kv(grid)]
    seqs = torch.full((b * k, 1), BOS, dtype=torch.long, device=grid.device)
    scores = torch.zeros(b, k, device=grid.device)
    scores[:, 1:] = -float("inf")  # all beams start as the same <bos>: keep one
    done = torch.zeros(b * k, dtype=torch.bool, device=grid.device)
    heads = model.layers[0].self_attn.heads
    empty = grid.new_zeros(b * k, heads, 0, model.pos.shape[1] // heads)
    caches: list = [(empty, empty)] * len(model.layers)
    for t in range(max_len):
        logits, caches = model.step(seqs[:, -1], t, kv, caches)
        logp = logits.float().log_softmax(-1)
        logp[done] = -float("inf")
        logp[done, EOS] = 0.0
        n_vocab = logp.shape[-1]
        top, idx = (scores.reshape(-1, 1) + logp).reshape(b, k * n_vocab).topk(k, 1)
        parent = (torch.arange(b, device=grid.device)[:, None] * k + idx // n_vocab).reshape(-1)
        token = (idx % n_vocab).reshape(-1)
        seqs = torch.cat([seqs[parent], token[:, None]], 1)
        caches = [(c[0][parent], c[1][parent]) for c in caches]
        done = done[parent] | (token == EOS)
        scores = top
        if bool(done.all()):
            break
    best = scores.argmax(1) + torch.arange(b, device=grid.device) * k
    return [s[1:].tolist() for s in seqs[best]]
