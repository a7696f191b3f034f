"""The node's inputs: camera subscriptions (sensor_msgs/Image, CompressedImage) that hand
each message to the pool, with reliability `auto` (reliable, re-subscribed best effort
when a best-effort camera appears)."""
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from ..compat import SubscriptionEventCallbacks
from ..frames import compressed_msg_to_frame, image_msg_to_frame


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
        self.subs = {}           # topic -> (subscription, reliability, msg_type, to_frame)
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
            self._subscribe(msg_type, topic, to_frame, start)

    def unsubscribe(self):
        self._timer.cancel()
        self._downgrade.clear()
        for sub, *_ in self.subs.values():
            self.node.destroy_subscription(sub)
        self.subs = {}

    def destroy(self):
        self.unsubscribe()
        self.node.destroy_timer(self._timer)

    def reliabilities(self):
        """topic -> the reliability it is subscribed with now (for diagnostics)."""
        return {topic: entry[1] for topic, entry in self.subs.items()}

    def _subscribe(self, msg_type, topic, to_frame, reliability):
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

        def on_frame(msg, source=topic):
            self.submit(source, lambda: to_frame(msg), msg.header)

        sub = node.create_subscription(
            msg_type, topic, on_frame, qos,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible))
        self.subs[topic] = (sub, reliability, msg_type, to_frame)
        node.get_logger().info(f'subscribed to {topic} ({msg_type.__name__}, {reliability}'
                               f'{", auto" if auto else ""})')

    def _apply_downgrades(self):
        self._timer.cancel()
        for topic in sorted(self._downgrade):
            entry = self.subs.get(topic)
            if entry is not None and entry[1] == 'reliable':
                sub, _, msg_type, to_frame = self.subs.pop(topic)
                self.node.destroy_subscription(sub)
                self._subscribe(msg_type, topic, to_frame, 'best_effort')
        self._downgrade.clear()
