"""The one projection every attack uses: pixel mask, l_p ball, box — in that order.

Order matters: the mask zeroes components and the box clip moves each pixel
towards the (in-box) original, so neither can increase the perturbation's l_p
norm; projecting onto the ball first and then applying them keeps all three
constraints exact.
"""

from __future__ import annotations

import torch

NORMS = ("l1", "l2", "linf")
BOX = (0.0, 255.0)


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
    return norm


#: an evaluation's d_max grid when none is given, per norm (crop pixels, 0..255: l2 and l1 sum over pixels,
#: linf bounds each pixel)
DEFAULT_GRIDS = {"l2": (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0), "l1": (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0),
                 "linf": (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)}


def check_budgets(norm: str, d_max) -> None:
    """An evaluation's d_max grid must mean something in its norm: a linf budget bounds each pixel on 0..255, so
    one above 255 is no bound at all (an l2 grid given for linf measures nothing)."""
    check_norm(norm)
    over = [float(d) for d in d_max if norm == "linf" and float(d) > BOX[1]]
    if over:
        raise ValueError(f"linf d_max {', '.join(f'{d:g}' for d in over)} is above 255: a linf budget bounds each "
                         f"pixel (0..255), so that is no bound; give linf budgets such as "
                         f"{' '.join(f'{d:g}' for d in DEFAULT_GRIDS['linf'])}")


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def lp_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    d = _flat(delta)
    if norm == "l2":
        return d.norm(dim=1)
    if norm == "linf":
        return d.abs().amax(dim=1)
    if norm == "l1":
        return d.abs().sum(dim=1)
    if norm == "l0":
        return (d != 0).sum(dim=1).to(delta.dtype)
    raise ValueError(f"unknown norm {norm!r}")


def all_norms(delta: torch.Tensor, tol: float = 1e-6) -> dict[str, torch.Tensor]:
    """Per-sample l0 (pixels changed by > tol), l1, l2, l∞ of a perturbation."""
    d = _flat(delta)
    return {"l0": (d.abs() > tol).sum(1).to(delta.dtype), "l1": d.abs().sum(1), "l2": d.norm(dim=1),
            "linf": d.abs().amax(1)}


def _project_l1(d: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean projection onto the l1 ball (Duchi et al. 2008), batched."""
    a = d.abs()
    inside = a.sum(1) <= eps
    mu, _ = torch.sort(a, dim=1, descending=True)
    cs = mu.cumsum(1)
    ar = torch.arange(1, d.shape[1] + 1, device=d.device, dtype=d.dtype)
    cond = mu - (cs - eps[:, None]) / ar > 0
    rho = cond.to(d.dtype).mul(ar).argmax(1)  # last index where cond holds
    theta = (cs.gather(1, rho[:, None])[:, 0] - eps) / (rho + 1).to(d.dtype)
    out = d.sign() * (a - theta[:, None]).clamp_min(0)
    return torch.where(inside[:, None], d, out)


def project(x_adv: torch.Tensor, x0: torch.Tensor, eps: float | torch.Tensor | None, norm: str = "l2",
            mask: torch.Tensor | None = None, box: tuple[float, float] = BOX) -> torch.Tensor:
    """Closest point (per constraint) to `x_adv` with ‖x − x0‖_p ≤ eps, x − x0 = 0 off the mask, x in box.

    `eps` may be per-sample (a tensor of N) — one call serves a whole d_max sweep.
    `mask` is broadcastable to x (1 where pixels may change).
    """
    delta = x_adv - x0
    if mask is not None:
        delta = delta * mask
    if eps is not None:
        check_norm(norm)
        e = torch.as_tensor(eps, dtype=x0.dtype, device=x0.device).expand(x0.shape[0]).clone()
        d = _flat(delta)
        if norm == "l2":
            n = d.norm(dim=1).clamp_min(1e-12)
            d = d * torch.clamp(e / n, max=1.0)[:, None]
        elif norm == "linf":
            d = torch.maximum(torch.minimum(d, e[:, None]), -e[:, None])
        else:
            d = _project_l1(d, e)
        delta = d.reshape(delta.shape)
    return torch.clamp(x0 + delta, box[0], box[1])


def quantize(x_adv: torch.Tensor, x0: torch.Tensor, eps: float | None, norm: str = "l2") -> torch.Tensor:
    """Whole pixel values (what a camera publishes) that still satisfy the budget.

    Rounding to the nearest value can push a perturbation on the sphere past
    d_max (in l2 by up to ~√n/2). Where it does, the fewest components that were
    rounded *away* from the original are moved back one step towards it,
    those that were rounded up the most first, until the norm fits; at worst
    every such component goes back, and then each |δ_i| is at most its
    unrounded value, so the norm is at most the projected one. Needs an
    integer-valued `x0` (uint8 crops); the box holds because every value stays
    between x0 and a value in the box, or is a rounding of one inside it.
    """
    near = x_adv.round()
    if eps is None:
        return near
    check_norm(norm)
    if not torch.equal(x0, x0.round()):
        raise ValueError("quantize needs integer-valued clean pixels (uint8 crops)")
    if norm == "linf":  # |δ_i| ≤ eps per pixel: the nearest value beyond it goes back to ⌊eps⌋
        lim = float(torch.floor(torch.as_tensor(eps)))
        return x0 + torch.clamp(near - x0, -lim, lim)
    r, d = _flat(near - x0), _flat(x_adv - x0)
    away = r.abs() > d.abs()  # rounded away from x0: one step back costs ≤ 0.5 of accuracy
    if norm == "l2":
        excess = (r * r).sum(1) - float(eps) ** 2
        gain = 2 * r.abs() - 1  # the drop in ‖r‖² when |r_i| goes down by one
    else:
        excess = r.abs().sum(1) - float(eps)
        gain = torch.ones_like(r)
    priority = torch.where(away, r.abs() - d.abs(), torch.full_like(r, -1.0))
    order = priority.argsort(dim=1, descending=True)
    g = torch.where(away, gain, torch.zeros_like(gain)).gather(1, order)
    before = g.cumsum(1) - g  # freed by the components ahead of this one
    take_sorted = (before < excess[:, None] - 1e-9) & away.gather(1, order)
    take = torch.zeros_like(away).scatter(1, order, take_sorted)
    r = torch.where(take, r - r.sign(), r)
    return x0 + r.reshape(x0.shape)


def rect_mask(shape: tuple[int, int], rect: tuple[int, int, int, int], device=None) -> torch.Tensor:
    """A "sticker": 1 inside rect (x, y, w, h) of an H×W crop, 0 elsewhere; shape 1×H×W×1."""
    h, w = shape
    x, y, rw, rh = rect
    if rw <= 0 or rh <= 0 or x >= w or y >= h or x + rw <= 0 or y + rh <= 0:
        raise ValueError(f"mask rectangle {rect} is empty or outside the {w}×{h} crop")
    m = torch.zeros(1, h, w, 1, device=device)
    m[:, max(y, 0) : min(y + rh, h), max(x, 0) : min(x + rw, w)] = 1.0
    return m
