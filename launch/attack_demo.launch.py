"""Simulated camera → attack node (man-in-the-middle) → guard, with the oracle teacher.

The topology is config/demo.yaml's (`icub-guard demo` reads the same file). The attack
starts disabled; switch it in with:
  ros2 service call /attack_node/enable std_srvs/srv/SetBool "{data: true}"
"""

from icub_guard.ros.launching import demo_launch_description


def generate_launch_description():
    return demo_launch_description(attack=True)
