"""Security evaluation (the paper's experiment), teaching under a lying teacher, and their reports."""

from .defences import DefenceEvalConfig, DefenceEvalResult, run_defence_evaluation
from .report import markdown, sanity_lines, write_defence_report, write_report, write_teaching_report
from .security import EvalConfig, EvalResult, run_security_evaluation
from .teaching import TeachingEvalConfig, TeachingEvalResult, run_teaching_evaluation

__all__ = [
           "DefenceEvalConfig",
           "DefenceEvalResult",
           "EvalConfig",
           "EvalResult",
           "TeachingEvalConfig",
           "TeachingEvalResult",
           "markdown",
           "run_defence_evaluation",
           "run_security_evaluation",
           "run_teaching_evaluation",
           "sanity_lines",
           "write_defence_report",
           "write_report",
           "write_teaching_report",
]
