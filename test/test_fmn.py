"""The fast minimum-norm curve: one attack for every d_max, never weaker than Algorithm 1 on the same crops."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from icub_guard.attacks import PaperAttack
from icub_guard.attacks.fmn import FastMinimumNorm, min_norm_curve


def _setup(trained, data7):
    model = trained.guard_model()
    test = data7["test"]
    x = torch.from_numpy(test.images[::2]).float()
    y = torch.tensor([trained.classes.index(v) for v in test.labels[::2]])
    labels = np.array(test.labels[::2], dtype=object)

    def judge(imgs, idx):  # the evaluation's rule: correct unless accepted with a wrong label
        pred = np.array([d.label for d in trained.classify_features(trained.features(imgs))], dtype=object)
        return (pred == labels[idx]) | (pred == "unknown")

    return model, x, y, judge


def test_the_min_norm_curve_is_never_above_algorithm_1(trained, data7):
    model, x, y, judge = _setup(trained, data7)
    grid = [0.0, 250.0, 1000.0, 3000.0]
    alg1 = [float(np.mean(judge(x.round().to(torch.uint8).numpy(), np.arange(len(y)))))]
    for r in PaperAttack(model, eps=None, steps=10, reject_aware=True).sweep(x, y, grid[1:]):
        alg1.append(float(np.mean(judge(r.images(), np.arange(len(y))))))
    fast, info = min_norm_curve(model, x, y, grid, judge, reject_aware=True)
    one = 1 / len(y) + 1e-12
    assert all(f <= a + one for f, a in zip(fast, alg1, strict=True)), (fast, alg1)
    assert fast[0] == alg1[0] and all(b <= a for a, b in itertools.pairwise(fast))
    norms = np.array(info["norms"])
    assert np.isfinite(norms).all() and (norms[np.isfinite(norms)] >= 0).all()


def test_fmn_stops_samples_early_and_falls_back_where_it_finds_nothing(trained, data7):
    model, x, y, judge = _setup(trained, data7)
    attack = FastMinimumNorm(model, steps=40, patience=3)
    r = attack(x, y)
    found = torch.isfinite(attack.best_norms)
    assert found.all() and (r.norms["l2"][found] <= attack.best_norms[found] + 1e-3).all()
    calls = []

    def fallback(xs, ys, grid):
        calls.append(len(ys))
        return [np.zeros(len(ys), bool) for _ in grid]  # Algorithm 1 (pretend) breaks them all

    fast, info = min_norm_curve(model, x, y, [0.0, 500.0], judge, steps=1, patience=1, fallback=fallback)
    assert info["fallback_samples"] == sum(calls) > 0  # one step finds nothing for most crops
    assert fast[0] <= 1 - info["fallback_samples"] / len(y) + 1e-12  # what the fallback breaks counts as broken
