"""Launch test (launch_testing) for classify.launch.py: the launch file starts the
classifier with a model config and the sample camera, Classification messages arrive.

Runs under `colcon test` / `launch_test` on a ROS 2 install. launch, launch_ros and
launch_testing are not on PyPI, so in the standalone environment this module is skipped;
test_node.py covers the same behaviour by starting the node as a process over DDS.
"""
import os
import time
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not importable (not on PyPI; it comes with a '
                             'ROS 2 install): test_node.py covers the node over DDS instead')
launch = pytest.importorskip('launch')
launch_ros = pytest.importorskip('launch_ros')

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    launch_file = os.path.join(get_package_share_directory('edge_classifier'), 'launch',
                               'classify.launch.py')
    return launch.LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(launch_file),
            # default (relative) topics: the namespace moves the camera and the classifier
            launch_arguments={'model': 'efficientnet_lite0', 'camera': 'sim',
                              'camera_rate': '5.0', 'namespace': 'launch_test'}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestClassificationArrives(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node('launch_test_listener')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_classifications_with_top5_sorted(self):
        got = []
        self.node.create_subscription(Classification, '/launch_test/classification',
                                      got.append, 10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(got) < 3:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertGreaterEqual(len(got), 3)
        for msg in got:
            self.assertEqual(len(msg.results), 5)
            scores = [h.score for h in msg.results]
            self.assertEqual(scores, sorted(scores, reverse=True))
            self.assertEqual(msg.header.frame_id, 'camera_optical_frame')


@launch_testing.post_shutdown_test()
class TestExitCodes(unittest.TestCase):

    def test_nodes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
