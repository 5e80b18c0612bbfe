"""Simulated camera → attack (man-in-the-middle) → guard + oracle teacher.

Switch the attack in with: ros2 service call /enable std_srvs/srv/SetBool "{data: true}"
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("icub_guard")
    cfg = lambda name: os.path.join(share, "config", name)
    model = LaunchConfiguration("model_path")
    return LaunchDescription([
        DeclareLaunchArgument("model_path", default_value="guard_model.npz"),
        DeclareLaunchArgument("attack", default_value="paper"),
        DeclareLaunchArgument("eps", default_value="1000.0"),
        Node(package="icub_guard", executable="sim_camera_node", name="sim_camera_node",
             parameters=[cfg("sim_camera.yaml")], remappings=[("image", "camera/image")], output="screen"),
        Node(package="icub_guard", executable="attack_node", name="attack_node",
             parameters=[cfg("attack.yaml"), {"model_path": model, "attack": LaunchConfiguration("attack"),
                                              "eps": LaunchConfiguration("eps")}],
             remappings=[("image_in", "camera/image"), ("image_out", "guard/image")], output="screen"),
        Node(package="icub_guard", executable="guard_node", name="guard_node",
             parameters=[cfg("guard.yaml"), {"model_path": model}], remappings=[("image", "guard/image")],
             output="screen"),
        Node(package="icub_guard", executable="teacher_node", name="teacher_node",
             parameters=[cfg("teacher.yaml")], output="screen"),
    ])
