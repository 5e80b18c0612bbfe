"""icub_guard: adversarially guarded online object recognition for ROS 2 robots."""

__version__ = "0.1.0"
