"""Print the Classification messages a classifier publishes, with class names.

    ros2 run edge_classifier classification_echo [--topic classification] [--count N]
    ros2 run edge_classifier classification_echo --detections [--topic classified_detections]

Class names come from the node's LabelInfo (<topic>/label_info, latched), so this also
shows a late subscriber getting the label map. --detections prints the two-stage output
(vision_msgs/Detection2DArray): each detection's id and its box's top-1; its names come from
classification/label_info (--labels).
"""
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Classification, Detection2DArray, LabelInfo

from ..errors import Parser
from ..ros_main import init_tool, shutdown_rclpy, spin_once


def format_result(msg, names):
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    parts = [f'{names.get(int(h.class_id), h.class_id) if h.class_id.isdigit() else h.class_id} '
             f'{h.score:.3f}' for h in msg.results]
    return f'{msg.header.frame_id:<16} stamp={stamp:.3f}  ' + ' | '.join(parts)


def _name(class_id, names):
    return names.get(int(class_id), class_id) if class_id.isdigit() else class_id


def format_detections(msg, names):
    """One line per Detection2DArray: each detection's id (or index) and its top-1."""
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    parts = []
    for i, det in enumerate(msg.detections):
        top = det.results[0].hypothesis if det.results else None
        parts.append(f'{det.id or i}: ' + (f'{_name(top.class_id, names)} {top.score:.3f}'
                                           if top is not None else '(skipped)'))
    return f'{msg.header.frame_id:<16} stamp={stamp:.3f}  ' + ' | '.join(parts)


class Echo:
    """Subscribes to a Classification topic (or, with detections=True, a Detection2DArray
    topic) and a label map; collects what arrives. Results that come before the label map
    wait for it (at most `label_wait` s after the first), so they show names, not bare
    class ids: the map is latched and normally arrives within moments of discovery."""

    def __init__(self, node, topic='classification', on_message=None, detections=False,
                 labels=None, label_wait=2.0):
        self.node = node
        self.names = {}
        self.received = []
        self.on_message = on_message
        self.label_wait = label_wait
        self._held = []            # results that came before the label map
        self._first = None
        self.shown = 0
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        labels = labels or ('classification/label_info' if detections
                            else topic + '/label_info')
        node.create_subscription(LabelInfo, labels, self._labels, latched)
        node.create_subscription(Detection2DArray if detections else Classification, topic,
                                 self._result, 10)

    def _labels(self, msg):
        self.names = {c.class_id: c.class_name for c in msg.class_map}
        self.flush()

    def _result(self, msg):
        self.received.append(msg)
        self._first = self._first or time.monotonic()
        self._held.append(msg)
        if self.names or time.monotonic() - self._first >= self.label_wait:
            self.flush()

    def flush(self):
        """Show the results held for the label map (call it now and then: a map that never
        comes must not hold them for ever)."""
        if self._held and (self.names or self._first is None or
                           time.monotonic() - self._first >= self.label_wait):
            held, self._held = self._held, []
            for msg in held:
                self.shown += 1
                if self.on_message:
                    self.on_message(msg, self.names)


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--topic', default=None,
                        help='classification, or classified_detections with --detections; '
                             'relative names follow --ros-args -r __ns:=...')
    parser.add_argument('--detections', action='store_true',
                        help='the two-stage output: vision_msgs/Detection2DArray')
    parser.add_argument('--labels', default=None,
                        help='LabelInfo topic (default <topic>/label_info, with --detections '
                             'classification/label_info)')
    parser.add_argument('--count', type=int, default=0, help='stop after N messages')
    parser.add_argument('--timeout', type=float, default=0, help='stop after S seconds')
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = parser.parse_args(argv[:split])   # a typo'd option fails, naming it
    init_tool(args=[sys.argv[0], *argv[split:]])
    node = rclpy.create_node('classification_echo')
    topic = args.topic or ('classified_detections' if args.detections else 'classification')
    fmt = format_detections if args.detections else format_result
    echo = Echo(node, topic, on_message=lambda msg, names: print(fmt(msg, names), flush=True),
                detections=args.detections, labels=args.labels)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while rclpy.ok() and not (args.count and echo.shown >= args.count):
            if deadline and time.monotonic() > deadline:
                break
            spin_once(node, 0.1)
            echo.flush()
    except KeyboardInterrupt:   # Ctrl-C, SIGTERM
        pass
    finally:
        echo.label_wait = 0.0
        echo.flush()   # what is held is shown, with or without names
        node.destroy_node()
        shutdown_rclpy()
    return 0 if not args.count or echo.shown >= args.count else 1


if __name__ == '__main__':
    sys.exit(main())
