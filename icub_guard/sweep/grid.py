"""The grid: every combination of the axes' values as a cell, its configuration built and checked, and its hash.

A cell's hash is SHA-256 over the evaluation's name and its *whole* configuration (defaults filled in, `auto`
weights resolved), in canonical JSON: two sweep files that describe the same run share its row in the results
table, and a cell whose configuration changed in any field is a new cell. The code version is recorded
beside the result, not hashed: re-running a sweep after a code change resumes it (re-run a cell by deleting
its row).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass

from .spec import SweepError, SweepSpec, axis_values, resolve_weights


@dataclass(frozen=True)
class Cell:
    index: int
    axes: dict  # this cell's value of each axis (each parameter of a linked one), in the file's order
    config: object  # the evaluation's config dataclass
    hash: str

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.axes.items())


def _short(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def config_hash(evaluation: str, config: dict) -> str:
    canonical = json.dumps({"evaluation": evaluation, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid, each config built (its own checks run), or a `SweepError` naming the cell."""
    names = list(spec.axes)
    cells: list[Cell] = []
    for i, values in enumerate(itertools.product(*(spec.axes[n] for n in names))):
        axes = {k: v for n, value in zip(names, values, strict=True) for k, v in axis_values(n, value).items()}
        params = resolve_weights({**spec.fixed, **axes})
        try:
            cfg = spec.kind.config(**params)
        except (TypeError, ValueError) as exc:
            where = ", ".join(f"{k}={_short(v)}" for k, v in axes.items())
            raise SweepError(f"{spec.path}: cell {i} ({where}) cannot be built: {exc}") from exc
        cells.append(Cell(i, axes, cfg, config_hash(spec.evaluation, asdict(cfg))))
    seen: dict[str, Cell] = {}
    for c in cells:
        if c.hash in seen:
            raise SweepError(f"{spec.path}: cells {seen[c.hash].index} ({seen[c.hash].label}) and {c.index} "
                             f"({c.label}) are the same run")
        seen[c.hash] = c
    return cells
