"""The demo's launch descriptions, built from the topology in config/demo.yaml.

Imported only by the launch files (launch and launch_ros come with a ROS install).
"""

from __future__ import annotations

from ..defaults import load
from ..topology import PACKAGE, argument_choices, demo_nodes, demo_settings


def _text(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def demo_launch_description(attack: bool):
    from launch import Condition, LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    nodes = demo_nodes(attack)
    described = load("demo.yaml")["arguments"]
    defaults: dict = {arg: value for arg, value in demo_settings().items() if arg in described}
    for spec in nodes:
        for name, value in spec.argument_defaults().items():
            defaults.setdefault(name, value)
    choices = argument_choices()
    actions = [DeclareLaunchArgument(name, default_value=_text(value), description=described[name],
                                     **({"choices": choices[name]} if name in choices else {}))
               for name, value in defaults.items()]
    for spec in nodes:
        runs = Condition(predicate=lambda ctx, s=spec: s.runs_with(ctx.launch_configurations)) if spec.when else None
        actions.append(Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                            parameters=[str(spec.parameters_file),
                                        {param: LaunchConfiguration(arg) for param, arg in spec.arguments}],
                            remappings=list(spec.remappings.items()), output="screen", condition=runs))
    return LaunchDescription(actions)
