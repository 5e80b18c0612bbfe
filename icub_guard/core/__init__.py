"""Pure recognition core: no ROS imports, everything testable on its own.

Names are imported lazily (PEP 562), so `from icub_guard.core.session import ...`
in a teacher or camera process does not pay for torch and scikit-learn.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "OneVsAllSVC": "svm", "RLSClassifier": "svm", "make_classifier": "svm", "select_hyperparameters": "svm",
    "GuardError": "errors", "InputError": "errors", "ModelFileError": "errors", "WeightsUnavailableError": "errors",
    "BackboneSpec": "features", "FeatureExtractor": "features", "GuardModel": "pipeline",
    "Decision": "recognizer", "Recognizer": "recognizer", "RecognizerConfig": "recognizer",
    "ROI": "roi", "RoiSelector": "roi", "crop": "roi", "propose_roi": "roi", "UNKNOWN": "validation",
    "TeachingSession": "session", "SessionConfig": "session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
