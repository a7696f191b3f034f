"""web_view: see what the robot sees in a browser (the RDK habit: open http://<board>:8080).

    ros2 run edge_classifier web_view                                   # http://127.0.0.1:8080
    ros2 run edge_classifier web_view --ros-args -p host:=0.0.0.0 -r __ns:=/robot1

One page shows, live, the classifier's overlay image of a source (a selector when the node
publishes per-camera outputs), its top-k names with score bars (in the two-stage pipeline:
each box's top-1 from `classified_detections`), and the classifier's input and classified
fps and latency from /diagnostics. The server (webapp.py, tornado) is plain
Python; this node only wires ROS topics to it. Relative names (`classification`,
`classification/overlay`): a namespace moves it with the classifier.

Costs nothing while nobody watches: the overlay is subscribed only while a browser streams
it (and the classifier draws overlays only while they have a subscriber). Read-only, bound
to the loopback unless `host` says otherwise; beyond it, only with the token it logs (the URL
to open), and always only by its own names (the Host check: see webapp.Access).
"""
import socket
import sys
import threading

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, Detection2DArray, LabelInfo

from .errors import WebViewError
from .frames import image_msg_to_frame
from .overlay import frame_to_bgr
from .params import Param
from .ros_main import declare_rows, row_help, run_node, usage
from .webapp import Hub, Server, is_loopback, is_wildcard

NODE_NAME = 'web_view'
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
MAX_BOXES_SHOWN = 64   # a page lists at most this many boxes of a frame (the overlay has all)
STATS = ('input_fps', 'classified_fps', 'end_to_end_ms_p50', 'end_to_end_ms_p99', 'model')
PARAMS = (  # rows of the same kind as the classifier's (params.Param), all read-only
    Param('host', 'str', '127.0.0.1', 'Address the web server binds: 127.0.0.1 = this machine '
          'only; 0.0.0.0 = every network the robot is on (then the page needs the token).'),
    Param('port', 'int', 8080, 'TCP port of the web server.', low=1, high=65535),
    Param('max_clients', 'int', 8, 'Browsers served at once; the next one gets a 503 page.',
          low=1, high=64),
    Param('topic', 'str', 'classification', 'The classifier\'s output topic (relative: '
          'follows the namespace); its overlay is <topic>/overlay.'),
    Param('detections', 'str', 'classified_detections', 'The classifier\'s two-stage output '
          '(Detection2DArray, relative): each box\'s top-1 is listed beside the overlay of '
          '<topic>.'),
    Param('classifier', 'str', 'edge_classifier', 'Name of the classifier node whose '
          '/diagnostics status the page shows (in this namespace).'),
    Param('jpeg_quality', 'int', 80, 'JPEG quality of the streamed overlay.', low=10,
          high=100),
    Param('allowed_hosts', 'str[]', [], 'Further names a browser may reach the web view by '
          '(the Host header: a DNS name of the robot, a reverse proxy\'s; "*" = any). The '
          'bound address, loopback names, this machine\'s name and any IP address are always '
          'allowed; other names get 403 (DNS rebinding).', items='host names'),
    Param('token', 'str', '', 'The secret a browser must give (?token=... in the URL) when '
          'host is beyond the loopback; empty = a random one, logged at startup. Set on the '
          'loopback too, it is needed there as well.'),
)


class WebView(Node):

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        p = declare_rows(self, PARAMS, WebViewError)
        self.params = p
        self.topic = self.resolve_topic_name(p['topic'])
        ns = self.get_namespace().rstrip('/')
        self.classifier_fqn = f'{ns}/{p["classifier"]}'
        self.names = {}
        self._subs_lock = threading.Lock()
        self._overlay_subs = {}
        self._result_subs = {}
        self.hub = Hub([self.topic], on_watch=self._watch, on_unwatch=self._unwatch)
        self.create_subscription(LabelInfo, self.topic + '/label_info', self._labels, LATCHED)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics, 10)
        self._follow(self.topic)
        self.create_subscription(Detection2DArray, self.resolve_topic_name(p['detections']),
                                 self._boxes, 10)
        self._discover()
        self.create_timer(2.0, self._discover)
        try:
            self.server = Server(self.hub, p['host'], p['port'], p['max_clients'],
                                 allowed_hosts=p['allowed_hosts'], token=p['token'],
                                 on_refused=self._refused).start()
        except OSError as exc:
            raise WebViewError(f'cannot serve on {p["host"]}:{p["port"]}: {exc.strerror or exc}'
                               f' (another web_view, or a port in use: set -p port:=...)'
                               ) from None
        self.get_logger().info(f'web view of {self.topic} on {self.url()}')

    def url(self):
        """The page's address as a browser opens it, the token included; and where."""
        host, token = self.params['host'], self.server.access.token
        where = 'this machine only' if is_loopback(host) else 'every network this machine is on'
        if is_wildcard(host):
            host, where = socket.gethostname(), where + ', or any of its addresses'
        host = f'[{host}]' if ':' in host else host
        query = f'?token={token}' if token else ''
        return f'http://{host}:{self.server.port}/{query} ({where})'

    def _refused(self, text):
        self.get_logger().warning(f'refused {text}', throttle_duration_sec=5.0)

    # ---- sources ------------------------------------------------------------------------
    def _discover(self):
        """Per-camera outputs (<image topic>/classification with an overlay) join the
        selector when the classifier publishes them (that node's own publishers: another
        robot's classifier, or a viewer's subscription, never joins)."""
        ns, _, name = self.classifier_fqn.rpartition('/')
        try:
            graph = dict(self.get_publisher_names_and_types_by_node(name, ns or '/'))
        except Exception:  # rclpy's NodeNameNonExistentError: the classifier is not up yet
            graph = {}
        found = [self.topic] + sorted(
            t[:-len('/overlay')] for t, types in graph.items()
            if t.endswith('/classification/overlay') and 'sensor_msgs/msg/Image' in types and
            t[:-len('/overlay')] != self.topic and
            'vision_msgs/msg/Classification' in graph.get(t[:-len('/overlay')], []))
        for source in found:
            self._follow(source)
        self.hub.set_sources(found)

    def _follow(self, source):
        """The source's Classification (cheap: a few numbers), always."""
        if source in self._result_subs:
            return
        self._result_subs[source] = self.create_subscription(
            Classification, source, lambda msg, s=source: self._result(s, msg), 10)

    # ---- the overlay, only while watched (called from the server's thread) ---------------
    def _watch(self, source):
        with self._subs_lock:
            if source not in self._overlay_subs:
                self._overlay_subs[source] = self.create_subscription(
                    Image, source + '/overlay', lambda msg, s=source: self._overlay(s, msg), 1)

    def _unwatch(self, source):
        with self._subs_lock:
            sub = self._overlay_subs.pop(source, None)
            if sub is not None:
                self.destroy_subscription(sub)

    # ---- callbacks (executor thread) ------------------------------------------------------
    def _overlay(self, source, msg):
        try:
            bgr = frame_to_bgr(image_msg_to_frame(msg))
            ok, jpeg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY,
                                                  self.params['jpeg_quality']])
        except Exception as exc:  # a frame it cannot show: the page keeps the last one
            self.get_logger().warning(f'{source}/overlay: cannot show a frame: {exc}',
                                      throttle_duration_sec=5.0)
            return
        if ok:
            self.hub.frame(source, np.asarray(jpeg).tobytes(), _stamp(msg.header))

    def _labels(self, msg):
        self.names = {c.class_id: c.class_name for c in msg.class_map}

    def _name(self, class_id):
        return self.names.get(int(class_id), class_id) if class_id.isdigit() else class_id

    def _result(self, source, msg):
        results = [{'class_id': h.class_id, 'score': float(h.score),
                    'name': self._name(h.class_id)} for h in msg.results]
        self.hub.state(source, {'results': results, 'frame_id': msg.header.frame_id,
                                'stamp': _stamp(msg.header)})

    def _boxes(self, msg):
        """A two-stage result: the boxes of a frame of the merged output (the overlay draws
        them), each with its top-1; a box the classifier skipped has none (name None)."""
        boxes = []
        for i, det in enumerate(msg.detections[:MAX_BOXES_SHOWN]):
            top = det.results[0].hypothesis if det.results else None
            boxes.append({'id': det.id or f'#{i}',
                          'class_id': top.class_id if top else None,
                          'name': self._name(top.class_id) if top else None,
                          'score': float(top.score) if top else None})
        self.hub.state(self.topic, {'results': [], 'boxes': boxes,
                                    'boxes_total': len(msg.detections),
                                    'frame_id': msg.header.frame_id,
                                    'stamp': _stamp(msg.header)})

    def _diagnostics(self, msg):
        for status in msg.status:
            if status.name.split(':', 1)[0] == self.classifier_fqn:
                values = {kv.key: kv.value for kv in status.values}
                self.hub.stats({key: values[key] for key in STATS if key in values})

    def destroy_node(self):
        server = getattr(self, 'server', None)
        if server is not None:
            server.stop()
        return super().destroy_node()


def _stamp(header):
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def main(args=None):
    # the network profile: the overlay images it receives may cross a link (to a laptop)
    return run_node(WebView, NODE_NAME, args, large_frames=True, help_text=usage(
        'web_view', __doc__, row_help(PARAMS)))


if __name__ == '__main__':
    sys.exit(main())
