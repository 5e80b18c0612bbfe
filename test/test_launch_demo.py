"""launch_testing: the demo launch file's nodes come up, decide, ask and learn (needs a ROS 2 install).

Run by `colcon test` (the launch_testing pytest plugin) or `launch_test test/test_launch_demo.py`.
Where launch_testing cannot be imported (e.g. a pip-only machine) pytest skips this module; the
same behaviour is covered there by test_ros_nodes.py, which starts the nodes as plain processes.
"""

import json
import os
import time
import unittest

import pytest

pytest.importorskip("launch_testing", reason="launch_testing needs a ROS 2 install (not on PyPI)")
pytest.importorskip("launch_ros", reason="launch_ros needs a ROS 2 install (not on PyPI)")

import launch
import launch_testing.actions
import launch_testing.asserts
import rclpy
from launch_ros.actions import Node
from std_msgs.msg import String

FAST = {"weights": "random", "input_size": 64, "crop_size": 48, "device": "cpu", "query_rate_limit": 20.0}


@pytest.mark.launch_test
def generate_test_description():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    camera = Node(package="icub_guard", executable="sim_camera_node", parameters=[{"rate": 5.0, "image_size": 96,
                                                                                    "switch_period": 1.0}])
    guard = Node(package="icub_guard", executable="guard_node", parameters=[{**FAST, "model_path": ""}])
    teacher = Node(package="icub_guard", executable="teacher_node", parameters=[{"mode": "oracle"}])
    return launch.LaunchDescription([camera, guard, teacher, launch_testing.actions.ReadyToTest()]), {
        "guard": guard, "camera": camera, "teacher": teacher}


class TestDemoLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("launch_test_listener")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_decisions_queries_and_learning(self):
        decisions, feedback = [], []
        self.node.create_subscription(String, "decision", lambda m: decisions.append(json.loads(m.data)), 10)
        self.node.create_subscription(String, "teacher/feedback", lambda m: feedback.append(m.data), 10)
        end = time.monotonic() + 120
        while time.monotonic() < end and not (decisions and len(decisions[-1]["scores"]) >= 2):
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(decisions, "the guard published no decision")
        self.assertTrue(feedback, "the teacher answered no query")
        self.assertGreaterEqual(len(decisions[-1]["scores"]), 2, "the guard learned fewer than two classes")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
