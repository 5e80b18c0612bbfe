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


def _with(text: str, *deps: tuple[str, str]) -> str:
    return text + "".join(f"{_SEPARATOR}\nMSG: {name}\n{body}" for name, body in deps)


#: schema name (as rosbag2 names it) → its definition with dependencies
DEFINITIONS: dict[str, str] = {
    "sensor_msgs/msg/Image": _with(_IMAGE, ("std_msgs/Header", _HEADER), ("builtin_interfaces/Time", _TIME)),
    "sensor_msgs/msg/RegionOfInterest": _ROI,
    "std_msgs/msg/String": _STRING,
}

IMAGE, ROI, STRING = "sensor_msgs/msg/Image", "sensor_msgs/msg/RegionOfInterest", "std_msgs/msg/String"
