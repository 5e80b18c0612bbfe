"""The guard's defences: one small module each over `base.py`, composed in order by `pipeline.py`.

`make_defence("multicrop:combine=vote:fraction=0.8")` builds one from a spec: a name, then
optional `:key=value` parameters (a list of specs is comma-separated; `a+b` composes). Unknown
names and parameters, and invalid values, raise `ValueError`.
"""

from __future__ import annotations

import inspect

from .augment import AdversarialAugmentation
from .base import EOT, Defence, DefendedModel, Detector, InputTransform, NotFitted
from .blur import GaussianBlur
from .jpeg import Jpeg
from .kde import KernelDensity
from .mahalanobis import Mahalanobis
from .multicrop import MultiCrop
from .noise import GaussianNoise
from .open_set import OpenSetEVT
from .pipeline import DefencePipeline, DefendedDecision
from .resize_pad import RandomResizePad
from .shift import RandomShift
from .smoothing import RandomizedSmoothing
from .uncertainty import BayesianUncertainty

DEFENCES: dict[str, type[Defence]] = {cls.name: cls for cls in (
    AdversarialAugmentation,
    GaussianNoise, GaussianBlur, RandomShift, MultiCrop, RandomResizePad, Jpeg, KernelDensity, BayesianUncertainty,
    Mahalanobis, OpenSetEVT, RandomizedSmoothing)}


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def catalogue() -> list[tuple[str, str, list[str]]]:
    """Every defence: its name, its docstring's first line, and its parameters with their defaults
    (`icub-guard defences` and `evaluate --help` print it)."""
    out = []
    for name, cls in DEFENCES.items():
        sig = inspect.signature(cls.__init__).parameters.values()
        params = [f"{p.name}={p.default!r}" for p in sig
                  if p.name not in ("self", "seed") and p.kind is p.POSITIONAL_OR_KEYWORD]
        doc = cls.__dict__.get("__doc__") or inspect.getmodule(cls).__doc__ or ""
        out.append((name, inspect.cleandoc(doc).split("\n")[0], params))
    return out


def make_defence(spec: str, seed: int = 0) -> Defence:
    """`name` or `name:key=value:key=value` → the defence (`ValueError` on anything unknown or invalid)."""
    name, *items = spec.strip().split(":")
    if name not in DEFENCES:
        raise ValueError(f"unknown defence {name!r}; choose from {', '.join(DEFENCES)}")
    cls = DEFENCES[name]
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    params = {"seed": seed}
    for item in filter(None, (p.strip() for p in items)):
        key, eq, value = item.partition("=")
        if not eq or key not in allowed:
            raise ValueError(f"{name} has no parameter {key!r}; it takes {', '.join(sorted(allowed))}")
        params[key] = _value(value)
    return cls(**params)


__all__ = [
    "DEFENCES",
    "EOT",
    "BayesianUncertainty",
    "Defence",
    "DefencePipeline",
    "DefendedDecision",
    "DefendedModel",
    "Detector",
    "GaussianBlur",
    "GaussianNoise",
    "InputTransform",
    "Jpeg",
    "Mahalanobis",
    "MultiCrop",
    "NotFitted",
    "OpenSetEVT",
    "RandomResizePad",
    "RandomShift",
    "RandomizedSmoothing",
    "catalogue",
    "make_defence",
]
