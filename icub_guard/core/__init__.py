"""Pure recognition core: no ROS imports, everything testable on its own."""

from .classifiers import OneVsAllSVC, RLSClassifier, make_classifier, select_hyperparameters
from .errors import GuardError, InputError, ModelFileError, WeightsUnavailableError
from .features import BackboneSpec, FeatureExtractor
from .pipeline import GuardModel
from .recognizer import Decision, Recognizer, RecognizerConfig
from .roi import ROI, RoiSelector, crop, propose_roi
from .validation import UNKNOWN

__all__ = [
    "ROI", "UNKNOWN", "BackboneSpec", "Decision", "FeatureExtractor", "GuardError", "GuardModel", "InputError",
    "ModelFileError", "OneVsAllSVC", "RLSClassifier", "Recognizer", "RecognizerConfig", "RoiSelector",
    "WeightsUnavailableError", "crop", "make_classifier", "propose_roi", "select_hyperparameters",
]
