"""Simulated camera + guard + oracle teacher: the robot learns the SimWorld objects online.

The nodes, their parameter files, arguments and remappings are config/demo.yaml's
(`icub-guard demo` reads the same file). `ros2 launch icub_guard demo.launch.py --show-args`
lists the arguments.
"""

from icub_guard.ros.launching import demo_launch_description


def generate_launch_description():
    return demo_launch_description(attack=False)
