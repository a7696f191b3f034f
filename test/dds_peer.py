"""A separate process for test_dds_interop: answers every sensor_msgs/Image on
/peer/image with a vision_msgs/Classification on /peer/classification that carries the
image's header and its size as the score of class 'pixels'."""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, ObjectHypothesis


def main():
    rclpy.init()
    node = rclpy.create_node('dds_peer')
    pub = node.create_publisher(Classification, '/peer/classification', 10)

    def on_image(msg):
        out = Classification()
        out.header = msg.header
        out.results = [ObjectHypothesis(class_id='pixels', score=float(len(msg.data)))]
        pub.publish(out)

    node.create_subscription(Image, '/peer/image', on_image, 10)
    print('ready', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C (distro-dependent)
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
