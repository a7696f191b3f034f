"""The node's inputs: camera subscriptions (sensor_msgs/Image, CompressedImage) that hand
each message to the pool, with reliability `auto` (reliable, re-subscribed best effort
when a best-effort camera appears); and, for the two-stage pipeline, a detector's
vision_msgs/Detection2DArray per camera, paired with its image by header (pairing.py)
before the pair goes to the pool."""
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from ..compat import SubscriptionEventCallbacks
from ..frames import compressed_msg_to_frame, image_msg_to_frame
from ..boxes import boxes_of
from ..pairing import Pairing, header_key


def camera_topics(node, io):
    """The resolved camera topics, raw then compressed (the order Inputs subscribes in):
    what the outputs name their per-source topics after, known before any subscription."""
    return [node.resolve_topic_name(topic)
            for topic in (*io['image_topics'], *io['compressed_topics'])]


class DetectionBoxes:
    """The pool's `boxes` for one Detection2DArray: called on a worker (10,000 boxes are
    read off the executor's thread); keeps the message for the output array."""
    __slots__ = ('msg',)

    def __init__(self, msg):
        self.msg = msg

    def __call__(self):
        return boxes_of(self.msg)


class Inputs:
    """Subscriptions of one configured node: made by subscribe() (activate), destroyed by
    unsubscribe() (deactivate). submit(source, make_frame, header) gets every message."""

    def __init__(self, node, io, geometry, submit):
        self.node = node
        self.depth = io['depth']
        self.reliability = io['reliability']
        self.submit = submit
        max_pixels = io['max_image_pixels']

        def decompress(msg):  # a JPEG no larger than the model needs; a huge one unread
            return compressed_msg_to_frame(msg, max_pixels, geometry)

        # (message type, resolved topic, message -> Frame), resolved once
        self.sources = [(msg_type, node.resolve_topic_name(topic), to_frame)
                        for msg_type, topics, to_frame in (
                            (Image, io['image_topics'], image_msg_to_frame),
                            (CompressedImage, io['compressed_topics'], decompress))
                        for topic in topics]
        # image topic -> its detector's topic (resolved), the two-stage pipeline
        self.detection_topics = {node.resolve_topic_name(image): node.resolve_topic_name(det)
                                 for image, det in zip(io['image_topics'],
                                                       io.get('detection_topics') or [])}
        self.pairing = None
        self._expire_timer = None
        if self.detection_topics:
            self.pairing = Pairing(io['detection_timeout'], self._on_pair)
            self._expire_timer = node.create_timer(min(0.1, io['detection_timeout'] / 2),
                                                   self.pairing.expire)
            self._expire_timer.cancel()
        self._to_frame = {topic: to_frame for _, topic, to_frame in self.sources}
        self.subs = {}           # topic -> (subscription, reliability, msg_type, handler)
        self._downgrade = set()
        # One timer re-creates subscriptions that met an incompatible best-effort camera
        # (never from inside the subscription's own event callback); idle until needed.
        self._timer = node.create_timer(0.05, self._apply_downgrades)
        self._timer.cancel()

    @property
    def topics(self):
        return [topic for _, topic, _ in self.sources]

    def subscribe(self):
        start = 'reliable' if self.reliability == 'auto' else self.reliability
        for msg_type, topic, to_frame in self.sources:
            self._subscribe(msg_type, topic, self._image_handler(topic, to_frame), start)
        for image_topic, topic in self.detection_topics.items():
            self._subscribe(Detection2DArray, topic, self._detections_handler(image_topic),
                            start, raw=True)
        if self._expire_timer is not None:
            self._expire_timer.reset()

    def unsubscribe(self):
        self._timer.cancel()
        self._downgrade.clear()
        for sub, *_ in self.subs.values():
            self.node.destroy_subscription(sub)
        self.subs = {}
        if self.pairing is not None:
            self._expire_timer.cancel()
            self.pairing.clear()  # what waited for its partner is dropped (counted)

    def destroy(self):
        self.unsubscribe()
        self.node.destroy_timer(self._timer)
        if self._expire_timer is not None:
            self.node.destroy_timer(self._expire_timer)

    def _image_handler(self, topic, to_frame):
        if topic in self.detection_topics:
            def on_image(msg, pairing=self.pairing):
                pairing.image(topic, header_key(msg.header), msg)
            return on_image

        def on_frame(msg):
            self.submit(topic, lambda: to_frame(msg), msg.header)
        return on_frame

    def _detections_handler(self, image_topic):
        """Taken raw: the array arrived when the node took it from DDS. Converting a large
        one into Python (10,000 boxes: 0.1-0.5 s) is the node's own time, not the
        detector's lateness, and must not count against detection_timeout."""
        def on_detections(data, pairing=self.pairing):
            arrived = pairing.clock()
            msg = deserialize_message(data, Detection2DArray)
            pairing.detections(image_topic, header_key(msg.header), msg, arrived=arrived)
        return on_detections

    def _on_pair(self, source, image, detections):
        to_frame = self._to_frame[source]
        self.submit(source, lambda: to_frame(image), image.header,
                    boxes=DetectionBoxes(detections))

    def reliabilities(self):
        """topic -> the reliability it is subscribed with now (for diagnostics)."""
        return {topic: entry[1] for topic, entry in self.subs.items()}

    def _subscribe(self, msg_type, topic, handler, reliability, raw=False):
        node = self.node
        qos = QoSProfile(depth=self.depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                                      else ReliabilityPolicy.BEST_EFFORT))
        auto = self.reliability == 'auto'

        def incompatible(event, t=topic):
            if auto and reliability == 'reliable':
                node.get_logger().warning(f'{t}: a best-effort publisher appeared; '
                                          f're-subscribing best effort')
                self._downgrade.add(t)
                self._timer.reset()
                return
            node.get_logger().error(
                f'{t}: a publisher has incompatible QoS ({event.last_policy_kind}); this node '
                f'subscribes with reliability={reliability}: set the reliability parameter to '
                f'auto or to match the camera')

        sub = node.create_subscription(
            msg_type, topic, handler, qos, raw=raw,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible))
        self.subs[topic] = (sub, reliability, msg_type, handler, raw)
        node.get_logger().info(f'subscribed to {topic} ({msg_type.__name__}, {reliability}'
                               f'{", auto" if auto else ""})')

    def _apply_downgrades(self):
        self._timer.cancel()
        for topic in sorted(self._downgrade):
            entry = self.subs.get(topic)
            if entry is not None and entry[1] == 'reliable':
                sub, _, msg_type, handler, raw = self.subs.pop(topic)
                self.node.destroy_subscription(sub)
                self._subscribe(msg_type, topic, handler, 'best_effort', raw)
        self._downgrade.clear()
