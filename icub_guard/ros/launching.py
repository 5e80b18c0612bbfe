"""The demo's launch descriptions, built from the topology in config/demo.yaml.

Imported only by the launch files (launch and launch_ros come with a ROS install).
"""

from __future__ import annotations

from ..defaults import load
from ..topology import PACKAGE, demo_nodes


def _text(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def demo_launch_description(attack: bool):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    nodes = demo_nodes(attack)
    described = load("demo.yaml")["arguments"]
    defaults: dict = {}
    for spec in nodes:
        for name, value in spec.argument_defaults().items():
            defaults.setdefault(name, value)
    actions = [DeclareLaunchArgument(name, default_value=_text(value), description=described[name])
               for name, value in defaults.items()]
    for spec in nodes:
        actions.append(Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                            parameters=[str(spec.parameters_file),
                                        {a: LaunchConfiguration(a) for a in spec.arguments}],
                            remappings=list(spec.remappings.items()), output="screen"))
    return LaunchDescription(actions)
