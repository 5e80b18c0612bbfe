"""A sweep file: which evaluation, its fixed parameters, the axes and their values; refused before anything runs.

```yaml
evaluation: evaluate            # a name in `kinds.REGISTRY` (evaluate, evaluate-defences, ...)
results: main.sqlite            # the results table, relative to this file (default: <file stem>.sqlite beside it)
retries: 2                      # further attempts of a failed cell (default 2)
resources: {cpus: 1, gpus: 0.5} # per cell; gpus only where the cluster has a GPU
fixed: {n_train: 20, d_max: [0, 500, 1000]}
axes:
  weights: [random, imagenet]
  attack: [fmn, algorithm1]
  weights,input_size: [[random, 224], [simworld, 64]]   # linked: the values go together, one axis
```

Parameter names are the evaluation config's fields (`EvalConfig`, `DefenceEvalConfig`, `TeachingEvalConfig`,
`OpensetCellConfig`); an axis named `a,b` is linked: each of its values is a list giving `a` and `b` together (a
backbone and its own input size), so they vary as one axis, not as a product. Values are checked against the
field's type, the choices the CLI offers, and the config's own checks, for every cell, so a bad file fails here
naming the axis, the value or the cell, not hours into a run.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.errors import GuardError
from ..core.features import BACKBONES, SHIPPED_WEIGHTS, imagenet_cache
from .kinds import REGISTRY, EvaluationKind

TOP_LEVEL = {"evaluation", "results", "retries", "resources", "fixed", "axes"}
CHOICES = {"backbone": tuple(sorted(BACKBONES)), "norm": ("l1", "l2", "linf"), "variant": ("7", "28"),
           "device": None}  # device: auto, cpu, cuda, cuda:N (checked below)


class SweepError(GuardError):
    """A sweep file that cannot run as written (exit 2, with the reason)."""


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0  # a fraction of a GPU, used only where the cluster has one


@dataclass
class SweepSpec:
    path: Path
    kind: EvaluationKind
    fixed: dict[str, object]
    axes: dict[str, list]
    results: Path
    retries: int = 2
    resources: Resources = field(default_factory=Resources)

    @property
    def evaluation(self) -> str:
        return self.kind.name


def load_spec(path: str | Path, kinds: dict[str, EvaluationKind] | None = None) -> SweepSpec:
    """Read and check a sweep file (not its cells: `grid.expand` builds and checks each)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SweepError(f"cannot read sweep file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:  # e.g. the results table given where the sweep file goes
        raise SweepError(f"{path} is not a sweep file (YAML text): byte {exc.start} is not UTF-8") from exc
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid YAML: {exc}") from exc
    return parse_spec(doc, path, kinds)


def parse_spec(doc, path: Path, kinds: dict[str, EvaluationKind] | None = None) -> SweepSpec:
    kinds = REGISTRY if kinds is None else kinds
    where = str(path)
    if not isinstance(doc, dict):
        raise SweepError(f"{where}: a sweep file is a mapping with {', '.join(sorted(TOP_LEVEL))}")
    unknown = sorted(set(doc) - TOP_LEVEL)
    if unknown:
        raise SweepError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                         f"allowed: {', '.join(sorted(TOP_LEVEL))}")
    name = doc.get("evaluation")
    if not isinstance(name, str) or name not in kinds:
        raise SweepError(f"{where}: evaluation must be one of {', '.join(kinds)}, not {name!r}")
    kind = kinds[name]
    params = parameter_types(kind.config)
    fixed = doc.get("fixed") or {}
    axes = doc.get("axes") or {}
    if not isinstance(fixed, dict) or not isinstance(axes, dict):
        raise SweepError(f"{where}: fixed and axes are mappings of parameter names")
    if not axes:
        raise SweepError(f"{where}: no axes: the grid is empty (name at least one parameter with a list of values)")
    linked = {key: axis_names(key) if isinstance(key, str) else [key] for key in axes}
    on_axes = [n for names in linked.values() for n in names]
    for key in (*fixed, *on_axes):
        if not isinstance(key, str) or key not in params:
            raise SweepError(f"{where}: unknown parameter {key!r} of {name}; its parameters: {', '.join(params)}")
    both = sorted(set(fixed) & set(on_axes))
    if both:
        raise SweepError(f"{where}: {', '.join(both)} is both fixed and an axis")
    twice = sorted({n for n in on_axes if on_axes.count(n) > 1})
    if twice:
        raise SweepError(f"{where}: {', '.join(twice)} is on more than one axis")
    checked_axes: dict[str, list] = {}
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}: axis {key!r} has no values (give a non-empty list)")
        names = linked[key]
        if len(names) == 1:
            checked = [check_value(key, v, params[key], f"{where}: axis {key!r}") for v in values]
        else:
            checked = []
            for v in values:
                if not isinstance(v, list) or len(v) != len(names):
                    raise SweepError(f"{where}: linked axis {key!r}: {v!r} is not a list of {len(names)} values "
                                     f"({', '.join(names)})")
                checked.append(tuple(check_value(n, item, params[n], f"{where}: axis {key!r}")
                                     for n, item in zip(names, v, strict=True)))
        dupes = {repr(v) for v in checked if checked.count(v) > 1}
        if dupes:
            raise SweepError(f"{where}: axis {key!r} repeats {', '.join(sorted(dupes))}")
        checked_axes[key] = checked
    checked_fixed = {k: check_value(k, v, params[k], f"{where}: fixed {k!r}") for k, v in fixed.items()}
    retries = doc.get("retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise SweepError(f"{where}: retries must be an integer 0..10, not {retries!r}")
    res = doc.get("resources") or {}
    if not isinstance(res, dict) or set(res) - {"cpus", "gpus"}:
        raise SweepError(f"{where}: resources takes cpus and gpus, not {res!r}")
    try:
        resources = Resources(float(res.get("cpus", 1.0)), float(res.get("gpus", 0.0)))
    except (TypeError, ValueError) as exc:
        raise SweepError(f"{where}: resources must be numbers: {res!r}") from exc
    if resources.cpus <= 0 or resources.gpus < 0:
        raise SweepError(f"{where}: resources.cpus must be > 0 and gpus >= 0")
    results = Path(doc.get("results") or f"{path.stem}.sqlite")
    if not results.is_absolute():
        results = Path(os.path.normpath(path.parent / results))
    return SweepSpec(path, kind, checked_fixed, checked_axes, results, retries, resources)


def axis_names(key: str) -> list[str]:
    """The parameters an axis sets: one, or those of a linked axis `a,b` (its values give them together)."""
    return [n.strip() for n in key.split(",")]


def axis_values(key: str, value) -> dict:
    """One value of axis `key` as {parameter: value} (a linked axis's value names each of its parameters)."""
    names = axis_names(key)
    return {key: value} if len(names) == 1 else dict(zip(names, value, strict=True))


def parameter_types(config: type) -> dict[str, object]:
    """The config dataclass's fields and their types (what an axis or a fixed parameter may name)."""
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def check_value(name: str, value, kind, where: str):
    """`value` as the field's type (a list or a comma-separated string for a tuple), or a `SweepError`."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise SweepError(f"{where}: {value!r} is not a non-empty list")
        return tuple(check_value(name, v.strip() if isinstance(v, str) else v, item, where) for v in items)
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str | int) and not isinstance(v, bool)}[kind]
    if not ok(value):
        raise SweepError(f"{where}: {value!r} is not a {kind.__name__}")
    value = kind(value)
    choices = CHOICES.get(name)
    if choices and value not in choices:
        raise SweepError(f"{where}: unknown {name} {value!r}; choose one of {', '.join(choices)}")
    reason = {"dataset": _dataset_problem, "weights": _weights_problem, "device": _device_problem}.get(name)
    problem = reason(value) if reason and isinstance(value, str) else None
    if problem:
        raise SweepError(f"{where}: {problem}")
    return value


def _dataset_problem(name: str) -> str | None:
    """simworld7 / simworld28, an image folder, or `scheme:FILE` (e.g. a recording) naming an existing file."""
    if name.lower() in ("simworld7", "simworld28") or Path(name).is_dir():
        return None
    scheme, _, rest = name.partition(":")
    if rest and len(scheme) > 1:  # not a Windows drive letter
        return None if Path(rest).exists() else f"dataset {name!r}: {rest} does not exist"
    return f"unknown dataset {name!r}: simworld7, simworld28, an image folder, or scheme:FILE"


def _weights_problem(name: str) -> str | None:
    if name in ("random", "imagenet", "auto", *SHIPPED_WEIGHTS) or Path(name).is_file():
        return None
    return f"unknown weights {name!r}: random, imagenet, {', '.join(SHIPPED_WEIGHTS)}, auto or a checkpoint file"


def _device_problem(name: str) -> str | None:
    base, _, index = name.partition(":")
    if name in ("auto", "cpu", "cuda") or (base == "cuda" and index.isdigit()):
        return None
    return f"unknown device {name!r}: auto, cpu, cuda or cuda:N"


def resolve_weights(params: dict) -> dict:
    """`weights: auto` decided here, once, as the CLI decides it (ImageNet if in torch.hub's cache, else random),
    so a cell's configuration — and its hash — say what ran."""
    if params.get("weights") == "auto":
        return {**params, "weights": "imagenet" if imagenet_cache(params.get("backbone", "alexnet")).is_file()
                else "random"}
    return params
