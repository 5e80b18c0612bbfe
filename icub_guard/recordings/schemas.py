"""The ROS 2 message definitions a recording carries, as rosbag2 writes them (ros2msg text).

Each schema is the message's own definition followed by those it depends on, each
after a `MSG: pkg/Type` separator: what `ros2 bag record` stores, so `ros2 bag info`,
Foxglove and this package's reader decode the file without a ROS install.
"""

from __future__ import annotations

_SEPARATOR = "=" * 80

_TIME = "int32 sec\nuint32 nanosec\n"
_HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"
_IMAGE = ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
          "uint32 step\nuint8[] data\n")
_ROI = "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n"
_STRING = "string data\n"
# icub_guard_msgs, as its .msg files say without their comments (test_recordings checks they agree)
_GROUND_TRUTH = "std_msgs/Header header\nstring label\nuint64 frame\n"
_DECISION = ("std_msgs/Header header\nuint64 id\nuint64 query_id\nsensor_msgs/RegionOfInterest roi\nstring roi_source\n"
             "string region_id\nstring label\nbool accepted\nstring reason\nstring[] class_names\nfloat64[] scores\n"
             "float64[] thresholds\nfloat64 margin\nstring[] stage_names\nfloat64[] stage_scores\n"
             "float64 certified_radius\nstring[] notes\nfloat64 latency_ms\n")
_ATTACK_REPORT = ("std_msgs/Header header\nstring attack\nfloat64 eps\nstring norm\nstring target\nbool reject_aware\n"
                  "sensor_msgs/RegionOfInterest box\nstring label_before\nstring label_after\nbool accepted_after\n"
                  "bool fooled_own_copy\nbool success_before_rounding\nstring[] norm_names\nfloat64[] norm_values\n"
                  "uint32 gradient_evals\nfloat64 time_ms\nuint64 frames\nuint64 attacked\nuint64 fooled\n")


def _with(text: str, *deps: tuple[str, str]) -> str:
    return text + "".join(f"{_SEPARATOR}\nMSG: {name}\n{body}" for name, body in deps)


_STAMPED = (("std_msgs/Header", _HEADER), ("builtin_interfaces/Time", _TIME))

#: schema name (as rosbag2 names it) → its definition with dependencies
DEFINITIONS: dict[str, str] = {
    "sensor_msgs/msg/Image": _with(_IMAGE, *_STAMPED),
    "sensor_msgs/msg/RegionOfInterest": _ROI,
    "std_msgs/msg/String": _STRING,
    "icub_guard_msgs/msg/GroundTruth": _with(_GROUND_TRUTH, *_STAMPED),
    "icub_guard_msgs/msg/Decision": _with(_DECISION, *_STAMPED, ("sensor_msgs/RegionOfInterest", _ROI)),
    "icub_guard_msgs/msg/AttackReport": _with(_ATTACK_REPORT, *_STAMPED, ("sensor_msgs/RegionOfInterest", _ROI)),
}

IMAGE, ROI, STRING = "sensor_msgs/msg/Image", "sensor_msgs/msg/RegionOfInterest", "std_msgs/msg/String"
GROUND_TRUTH, DECISION, ATTACK_REPORT = ("icub_guard_msgs/msg/GroundTruth", "icub_guard_msgs/msg/Decision",
                                         "icub_guard_msgs/msg/AttackReport")
