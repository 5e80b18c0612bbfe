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
    d_max (by up to ~√n/2 in l2); where it does, each component is instead
    rounded towards the original, which never increases |δ_i| and so never any
    l_p norm. Needs an integer-valued `x0` (uint8 crops). The box holds because
    both roundings stay between x0 and a value in the box.
    """
    near = x_adv.round()
    if eps is None:
        return near
    if not torch.equal(x0, x0.round()):
        raise ValueError("quantize needs integer-valued clean pixels (uint8 crops)")
    over = lp_norm(near - x0, norm) > eps
    toward = x0 + torch.trunc(x_adv - x0)
    return torch.where(over.view(-1, *[1] * (x0.ndim - 1)), toward, near)


def rect_mask(shape: tuple[int, int], rect: tuple[int, int, int, int], device=None) -> torch.Tensor:
    """A "sticker": 1 inside rect (x, y, w, h) of an H×W crop, 0 elsewhere; shape 1×H×W×1."""
    h, w = shape
    x, y, rw, rh = rect
    if rw <= 0 or rh <= 0 or x >= w or y >= h or x + rw <= 0 or y + rh <= 0:
        raise ValueError(f"mask rectangle {rect} is empty or outside the {w}×{h} crop")
    m = torch.zeros(1, h, w, 1, device=device)
    m[:, max(y, 0) : min(y + rh, h), max(x, 0) : min(x + rw, w)] = 1.0
    return m
