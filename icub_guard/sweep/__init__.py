"""Declarative sweeps of the evaluations on Ray: a sweep file, its grid, one results table, a report."""

from .grid import Cell, expand
from .kinds import REGISTRY, EvaluationKind
from .results import ResultsTable
from .spec import SweepError, SweepSpec, load_spec

__all__ = ["REGISTRY", "Cell", "EvaluationKind", "ResultsTable", "SweepError", "SweepSpec", "expand", "load_spec"]
