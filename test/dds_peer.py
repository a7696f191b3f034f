"""A separate process for test_dds_interop: answers every sensor_msgs/Image on
/peer/image with a vision_msgs/Classification on /peer/classification that carries the
image's header and its size as the score of class 'pixels'. Run with the package's own
run_node (signal handling that ends cleanly on every distro: rclpy.spin on Jazzy once
hung after a SIGINT until the test killed it)."""
import sys

import rclpy
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, ObjectHypothesis

from edge_classifier.ros_main import run_node


def make_peer():
    node = rclpy.create_node('dds_peer')
    pub = node.create_publisher(Classification, '/peer/classification', 10)

    def on_image(msg):
        out = Classification()
        out.header = msg.header
        out.results = [ObjectHypothesis(class_id='pixels', score=float(len(msg.data)))]
        pub.publish(out)

    node.create_subscription(Image, '/peer/image', on_image, 10)
    print('ready', flush=True)
    return node


if __name__ == '__main__':
    sys.exit(run_node(make_peer, 'dds_peer'))
