"""Print the Classification messages a classifier publishes, with class names.

    ros2 run edge_classifier classification_echo [--topic classification] [--count N]

Class names come from the node's LabelInfo (<topic>/label_info, latched), so this also
shows a late subscriber getting the label map.
"""
import argparse
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Classification, LabelInfo


def format_result(msg, names):
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    parts = [f'{names.get(int(h.class_id), h.class_id) if h.class_id.isdigit() else h.class_id} '
             f'{h.score:.3f}' for h in msg.results]
    return f'{msg.header.frame_id:<16} stamp={stamp:.3f}  ' + ' | '.join(parts)


class Echo:
    """Subscribes to a Classification topic and its label map; collects what arrives."""

    def __init__(self, node, topic='classification', on_message=None):
        self.node = node
        self.names = {}
        self.received = []
        self.on_message = on_message
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(LabelInfo, topic + '/label_info', self._labels, latched)
        node.create_subscription(Classification, topic, self._result, 10)

    def _labels(self, msg):
        self.names = {c.class_id: c.class_name for c in msg.class_map}

    def _result(self, msg):
        self.received.append(msg)
        if self.on_message:
            self.on_message(msg, self.names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--topic', default='classification',
                        help='relative names follow --ros-args -r __ns:=...')
    parser.add_argument('--count', type=int, default=0, help='stop after N messages')
    parser.add_argument('--timeout', type=float, default=0, help='stop after S seconds')
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = rclpy.create_node('classification_echo')
    echo = Echo(node, args.topic,
                on_message=lambda msg, names: print(format_result(msg, names), flush=True))
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while rclpy.ok() and not (args.count and len(echo.received) >= args.count):
            if deadline and time.monotonic() > deadline:
                break
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C (distro-dependent)
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if not args.count or len(echo.received) >= args.count else 1


if __name__ == '__main__':
    sys.exit(main())
