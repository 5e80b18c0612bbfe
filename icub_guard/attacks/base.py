"""The base every attack shares: inputs, the attacker's objective, success, results.

An attack runs on any module mapping crops (N×H×W×3 float, 0..255) to N×K class
scores — `GuardModel` or a library's model. If the module has `thresholds` and
`reject` (as `GuardModel` does), success is judged with the reject option: an
adversarial example that is rejected was caught, so it is no success.

Objective ("gain", maximised). With a_l = f_l − max(thr_l, max_{m≠l} f_m), the
sample is accepted as l iff a_l > 0:
* error-generic, reject-blind (the paper's Ω with k = y, negated):
  max_{l≠y} f_l − f_y
* error-specific, reject-blind (the paper's Ω with k = t): f_t − max_{l≠t} f_l
* reject-aware (adaptive) variants: max_{l≠y} a_l, and a_t — the attacker who
  knows the thresholds wants its wrong class accepted, not rejected.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.rules import accept_margins, decide
from .constraints import BOX, all_norms, check_norm, project, quantize

log = logging.getLogger(__name__)


@dataclass
class AttackResult:
    x_adv: torch.Tensor  # N×H×W×3 float, 0..255
    success: torch.Tensor  # N bool: accepted with a wrong label (generic) / the target (specific)
    scores: torch.Tensor  # N×K scores at x_adv
    accepted: torch.Tensor  # N bool: would the model's reject option let it through
    norms: dict[str, torch.Tensor] = field(default_factory=dict)  # l0, l1, l2, linf of x_adv − x
    gradient_evals: int = 0  # backward passes used (DeepFool: one per candidate class per iteration)
    x: torch.Tensor | None = None  # the clean input
    eps: float | None = None  # the budget in `norm` the attack ran under
    norm: str = "l2"

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    def images(self) -> np.ndarray:
        """The adversarial crops as uint8, as a camera would publish them, still within the budget."""
        if self.x is None:
            return self.x_adv.detach().round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return quantize(self.x_adv.detach(), self.x, self.eps, self.norm).to(torch.uint8).cpu().numpy()


def _other_max(scores: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """max_{l≠k} f_l per sample."""
    masked = scores.clone()
    masked.scatter_(1, k[:, None], float("-inf"))
    return masked.amax(1)


PRECISIONS = ("float32", "bfloat16")


def fast_precision(device: torch.device | str) -> str:
    """bfloat16 where it is fast (CUDA with bf16, a CPU with AMX tiles), else float32: for attack gradients."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return "bfloat16" if dev.type == "cpu" and amx() else "float32"


def resolve_precision(precision: str, device: torch.device | str | None = None) -> str:
    """`precision` checked ("auto" or one of PRECISIONS); "auto" becomes `fast_precision(device)` when given."""
    if precision != "auto" and precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, {' or '.join(PRECISIONS)}, not {precision!r}")
    return fast_precision(device) if precision == "auto" and device is not None else precision


class AttackInterrupted(RuntimeError):
    """`should_stop` asked an attack to stop before it finished."""


class Attack:
    """Base class. Subclasses implement `_run(x, y, target, start) -> x_adv`.

    Parameters shared by all attacks: `eps` (max perturbation d_max; None for
    unbounded), `norm` (one of the class's `norms`; any other raises), `mask`
    (1 where pixels may change, broadcastable to N×H×W×3, e.g. from
    `rect_mask`), `reject_aware` (adaptive objective), `seed` (random starts and
    noise), `precision` of the gradient passes ("bfloat16": autocast, 2–3× faster
    on CPUs with AMX and on GPUs; the result's scores and success keep the model's).
    An unknown keyword argument raises `TypeError`. Iterative attacks add
    `steps` (their iteration budget); `gradient_evals` counts backward passes.
    """

    name = "attack"
    supports_targeted = True
    #: the norms this attack can bound; the first is its default
    norms: tuple[str, ...] = ("l2", "l1", "linf")

    def __init__(self, model: torch.nn.Module, eps: float | None = None, norm: str | None = None,
                 mask: torch.Tensor | None = None, reject_aware: bool = False, seed: int = 0, box=BOX,
                 precision: str = "float32"):
        self.model = model
        self.eps = None if eps is None else float(eps)
        if self.eps is not None and not self.eps >= 0:
            raise ValueError("eps must be >= 0")
        norm = self.norms[0] if norm is None else check_norm(norm)
        if norm not in self.norms:
            raise ValueError(f"{self.name} supports the norm(s) {', '.join(self.norms)}, not {norm!r}")
        self.norm = norm
        self.mask = mask
        self.reject_aware = reject_aware
        self.seed = seed
        self.box = box
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.precision = precision
        self.gradient_evals = 0
        #: optional callable checked before every forward pass; True stops the attack
        #: with `AttackInterrupted` (a ROS node passes "shutting down, or disabled?")
        self.should_stop = None

    # ----------------------------------------------------------- model view
    @property
    def device(self) -> torch.device:
        for t in itertools.chain(self.model.buffers(), self.model.parameters()):
            return t.device
        return torch.device("cpu")

    @property
    def thresholds(self) -> torch.Tensor | None:
        if getattr(self.model, "reject", False):
            return self.model.thresholds
        return None

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise AttackInterrupted(f"{self.name} stopped after {self.gradient_evals} gradient evaluations")

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The model's scores; every attack's every forward pass comes here, so it can be interrupted.

        Passes that build a graph (gradients) run at `precision`; the others (success, results) at the model's.
        """
        self.check_stop()
        if self.precision == "float32" or not torch.is_grad_enabled():
            return self.model(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            s = self.model(x)
        return s.float() if s.dtype in (torch.bfloat16, torch.float16) else s

    def gain(self, scores: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """The attacker's objective per sample (to maximise); see the module docstring."""
        if self.reject_aware:
            a = accept_margins(scores, self.thresholds)
            if target is not None:
                return a.gather(1, target[:, None])[:, 0]
            return a.scatter(1, y[:, None], float("-inf")).amax(1)
        if target is not None:
            return scores.gather(1, target[:, None])[:, 0] - _other_max(scores, target)
        return _other_max(scores, y) - scores.gather(1, y[:, None])[:, 0]

    def gain_and_grad(self, x: torch.Tensor, y, target, objective=None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """gain(x), ∂gain/∂x and the scores, in one forward + backward pass (`objective(scores, y, target)`: another
        per-sample function to maximise instead of `gain`, e.g. APGD's losses)."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            s = self.scores(x)
            g = (objective or self.gain)(s, y, target)
            (grad,) = torch.autograd.grad(g.sum(), x)
        self.gradient_evals += 1
        if self.mask is not None:
            grad = grad * self.mask
        return g.detach(), grad.detach(), s.detach()

    def accepted(self, scores: torch.Tensor) -> torch.Tensor:
        return decide(scores, self.thresholds)[1]

    def success(self, scores: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        top, ok = decide(scores, self.thresholds)
        return ok & (top == target) if target is not None else ok & (top != y)

    def project(self, x_adv: torch.Tensor, x0: torch.Tensor, eps=None) -> torch.Tensor:
        return project(x_adv, x0, self.eps if eps is None else eps, self.norm, self.mask, self.box)

    # ---------------------------------------------------------------- entry
    def _prepare(self, x, y, target):
        dev = self.device
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(dev, torch.float32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"attack input must be N×H×W×3 crops, got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all() or x.min() < self.box[0] or x.max() > self.box[1]:
            raise ValueError(f"attack input must be finite and inside the box {self.box}")
        y = torch.as_tensor(y, device=dev, dtype=torch.long).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{x.shape[0]} images but {y.shape[0]} labels")
        if target is not None:
            if not self.supports_targeted:
                raise ValueError(f"{self.name} is an untargeted attack")
            target = torch.as_tensor(target, device=dev, dtype=torch.long).reshape(-1).expand(x.shape[0])
        if self.mask is not None:
            self.mask = self.mask.to(dev, x.dtype)
        return x, y, target

    def __call__(self, x, y, target=None, x_init: torch.Tensor | None = None) -> AttackResult:
        """Attack crops `x` (true class indices `y`), towards `target` if given.

        `x_init` warm-starts iterative attacks (a d_max sweep passes the previous
        solution); it is projected onto this call's constraints first.
        """
        x, y, target = self._prepare(x, y, target)
        self.gradient_evals = 0
        start = x if x_init is None else self.project(torch.as_tensor(x_init, device=x.device, dtype=x.dtype), x)
        x_adv = self.project(self._run(x, y, target, start).detach(), x)  # constraints hold exactly
        with torch.no_grad():
            s = self.scores(x_adv)
        return AttackResult(x_adv, self.success(s, y, target), s, self.accepted(s), all_norms(x_adv - x),
                            self.gradient_evals, x, self.eps, self.norm)

    def _run(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, start: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sweep(self, x, y, eps_values, target=None) -> list[AttackResult]:
        """Run for increasing d_max, each warm-started from the previous solution (paper)."""
        results, prev = [], None
        base = self.eps
        try:
            for e in sorted(float(v) for v in eps_values):
                self.eps = e
                r = self(x, y, target, x_init=prev)
                results.append(r)
                prev = r.x_adv
        finally:
            self.eps = base
        return results


def check_steps(steps) -> int:
    """An iteration budget: a whole number ≥ 1."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    return steps


def steepest_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit-norm steepest ascent direction of a linearised objective in the given norm."""
    g = grad.reshape(grad.shape[0], -1)
    if norm == "linf":
        d = g.sign()
    elif norm == "l2":
        d = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    else:  # l1: move the few coordinates with the largest gradient (top 1%)
        k = max(1, g.shape[1] // 100)
        idx = g.abs().topk(k, dim=1).indices
        d = torch.zeros_like(g).scatter(1, idx, g.gather(1, idx).sign()) / k
    return d.reshape(grad.shape)
