"""The topics a recording holds: by default the demo's own names (config/demo.yaml).

`icub-guard record` writes, the readers read and `icub-guard replay` publishes
under these names, so a recording made here replays into the demo's graph
unchanged, and a robot's own recording only needs its topic names given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Topics:
    image: str  # sensor_msgs/Image
    roi: str  # sensor_msgs/RegionOfInterest
    label: str  # the camera's ground truth: icub_guard_msgs/GroundTruth (a robot's: std_msgs/String, see frames.py)
    decision: str = "/decision"  # icub_guard_msgs/Decision: the guard's decisions
    attack: str = "/attack/info"  # icub_guard_msgs/AttackReport: what the attack node did to a frame

    @classmethod
    def defaults(cls) -> Topics:
        """The camera node's topics as the demo remaps them (its `image`, `roi`, `ground_truth`)."""
        from ..topology import demo_nodes

        camera = next(n for n in demo_nodes(attack=False) if n.name == "sim_camera_node").remappings
        return cls(image=camera["image"], roi=camera["roi"], label=camera["ground_truth"])

    def with_names(self, image: str | None = None, roi: str | None = None, label: str | None = None) -> Topics:
        """These topics with the ones given replaced (None or empty keeps a default)."""
        return replace(self, **{k: v for k, v in (("image", image), ("roi", roi), ("label", label)) if v})
