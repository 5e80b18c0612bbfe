"""Fooling images (Nguyen et al., 2015): from noise, climb to a confident target.

The input only gives the shape; each image starts as seeded uniform noise and
gradient ascent (normalised l2 steps, box only) raises the target's gain until
it reaches `confidence`. Judged like any targeted attack: success means the
model accepts the noise as the target — what the reject option should stop.
"""

from __future__ import annotations

import torch

from .base import Attack, check_steps, steepest_direction


class FoolingImages(Attack):
    name = "fooling"
    norms = ("l2",)  # of its steps; the images are unbounded

    def __init__(self, model, steps: int = 100, step_size: float = 200.0, confidence: float = 0.5, **kw):
        if "eps" in kw:
            raise TypeError("fooling images start from noise and are unbounded: eps is not a parameter")
        super().__init__(model, None, **kw)
        self.steps, self.step_size, self.confidence = check_steps(steps), step_size, confidence

    def __call__(self, x, y=None, target=None, x_init=None):
        x_t = torch.as_tensor(x)
        if y is None:
            y = torch.full((x_t.shape[0],), -1, dtype=torch.long)
        if target is None:
            raise ValueError("fooling images need a target class")
        return super().__call__(x, y.clamp_min(0) if torch.is_tensor(y) else y, target, x_init)

    def _run(self, x, y, target, start):
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        cur = (torch.rand(x.shape, generator=gen) * (self.box[1] - self.box[0]) + self.box[0]).to(x.device)
        if self.mask is not None:
            cur = x + self.mask * (cur - x)
        for _ in range(self.steps):
            g, grad, _ = self.gain_and_grad(cur, y, target)
            done = g >= self.confidence
            if done.all():
                break
            step = self.step_size * steepest_direction(grad, "l2")
            cur = self.project(torch.where(done.view(-1, 1, 1, 1), cur, cur + step), x)
        return cur
