"""launch_testing: demo.launch.py itself comes up, decides, asks and learns (needs a ROS 2 install).

Run by `colcon test` (the launch_testing pytest plugin, with pytest 7.x: pytest >= 8 cannot load
launch_testing 3.7's plugin, ros2/launch issue 979) or `launch_test test/test_launch_demo.py`.
Where launch_testing cannot be imported (a pip-only machine) pytest skips this module; the same
behaviour is covered there by test_ros_nodes.py, which starts the nodes as plain processes.
"""

import os
import tempfile
import time
import unittest

import pytest

pytest.importorskip("launch_testing", reason="launch_testing needs a ROS 2 install (not on PyPI)")
pytest.importorskip("launch_ros", reason="launch_ros needs a ROS 2 install (not on PyPI)")

import launch
import launch_testing.actions
import launch_testing.asserts
import rclpy
from ament_index_python.packages import get_package_share_directory
from icub_guard_msgs.msg import ClassList, Decision, Query
from icub_guard_msgs.srv import Teach
from launch.launch_description_sources import PythonLaunchDescriptionSource
from rclpy.qos import DurabilityPolicy, QoSProfile

MODEL = os.path.join(tempfile.mkdtemp(prefix="icub_guard_launch_test_"), "model.npz")


@pytest.mark.launch_test
def generate_test_description():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    demo = os.path.join(get_package_share_directory("icub_guard"), "launch", "demo.launch.py")
    include = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(demo),
        launch_arguments={"weights": "random", "input_size": "64", "model_path": MODEL}.items())
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()]), {}


class TestDemoLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("launch_test_listener")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def wait(self, predicate, seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if predicate():
                return
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.fail(f"timed out after {seconds:.0f} s waiting for {what}")

    def test_decisions_queries_and_learning(self):
        decisions, queries, classes = [], [], []
        self.node.create_subscription(Decision, "/decision", decisions.append, 10)
        self.node.create_subscription(Query, "/teacher/query", queries.append, 10)
        self.node.create_subscription(ClassList, "/classes", classes.append,
                                      QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.wait(lambda: decisions, 120, "a decision")
        self.wait(lambda: queries, 60, "a question to the teacher")
        self.wait(lambda: len(decisions[-1].class_names) >= 2, 120, "two learned classes (the oracle's answers)")
        self.wait(lambda: classes and len(classes[-1].class_names) >= 2, 30, "the latched class list")

    def test_a_person_can_just_say_the_name(self):
        """At a person's pace (seconds after the frame, the oracle already answered its questions), a plain
        label teaches the object in view (or answers the newest open question) and the answer says which."""
        decisions = []
        self.node.create_subscription(Decision, "/decision", decisions.append, 10)
        self.wait(lambda: decisions, 120, "a decision")
        time.sleep(3.0)  # a person reads the screen and types
        client = self.node.create_client(Teach, "/guard_node/teach")
        self.assertTrue(client.wait_for_service(timeout_sec=30))
        fut = client.call_async(Teach.Request(label="mug", teacher="person"))
        rclpy.spin_until_future_complete(self.node, fut, timeout_sec=30)
        res = fut.result()
        self.assertIn(res.outcome, ("learned", "held", "refused"), res.reason)  # screened: never "invalid"
        self.assertIn(res.target, ("newest_query", "latest_decision"))
        self.assertGreater(res.decision_id, 0)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)  # 0 for every node: a clean stop
