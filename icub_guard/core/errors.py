"""Exception types of the core library.

Every bad input raises one of these with a message that names the problem, so a
ROS node can log it, count it and keep running.
"""


class GuardError(ValueError):
    """Base class: bad input or state that the caller can recover from."""


class InputError(GuardError):
    """An image, ROI, feature array or label is malformed."""


class ModelFileError(GuardError):
    """A saved model is corrupt, truncated, tampered with or does not match."""


class WeightsUnavailableError(GuardError):
    """Pre-trained backbone weights are neither cached nor downloadable."""


class RecordingError(InputError):
    """A recording (MCAP) is missing, malformed or truncated, or lacks a topic it was asked for."""
