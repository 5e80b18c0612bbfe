"""The guard alone, for a real robot: ros2 launch icub_guard guard.launch.py camera_topic:=/icub/cam/left."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    config = os.path.join(get_package_share_directory("icub_guard"), "config", "guard.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("camera_topic", default_value="image", description="sensor_msgs/Image input"),
        DeclareLaunchArgument("roi_topic", default_value="roi", description="sensor_msgs/RegionOfInterest input"),
        DeclareLaunchArgument("config", default_value=config, description="guard_node parameter file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the guard's topics"),
        Node(package="icub_guard", executable="guard_node", name="guard_node",
             namespace=LaunchConfiguration("namespace"), parameters=[LaunchConfiguration("config")],
             remappings=[("image", LaunchConfiguration("camera_topic")), ("roi", LaunchConfiguration("roi_topic"))],
             output="screen"),
    ])
