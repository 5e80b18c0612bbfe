"""Security evaluation (the paper's experiment) and its report."""

from .report import markdown, sanity_lines, write_report
from .security import EvalConfig, EvalResult, run_security_evaluation

__all__ = ["EvalConfig", "EvalResult", "markdown", "run_security_evaluation", "sanity_lines", "write_report"]
