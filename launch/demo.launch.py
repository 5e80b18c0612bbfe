"""Simulated camera + guard + oracle teacher: the robot learns the SimWorld objects online."""

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
        DeclareLaunchArgument("weights", default_value="auto"),
        Node(package="icub_guard", executable="sim_camera_node", name="sim_camera_node",
             parameters=[cfg("sim_camera.yaml")], output="screen"),
        Node(package="icub_guard", executable="guard_node", name="guard_node",
             parameters=[cfg("guard.yaml"), {"model_path": model, "weights": LaunchConfiguration("weights")}],
             output="screen"),
        Node(package="icub_guard", executable="teacher_node", name="teacher_node",
             parameters=[cfg("teacher.yaml")], output="screen"),
    ])
