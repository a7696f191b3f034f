"""The node's outputs: every publisher, behind one OutputGate (gate.py).

Results are published from the worker threads, overlays from the overlay thread, label
map and diagnostics from the executor's: all through the gate, so that once deactivate
has closed it nothing more goes out, whichever thread was about to publish.
"""
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import (Classification, Detection2DArray, LabelInfo, ObjectHypothesis,
                             ObjectHypothesisWithPose, VisionClass, VisionInfo)

from ..gate import OutputGate
from ..overlay import OverlayWorker

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def detections_message(result):
    """The output of a frame with boxes: the input Detection2DArray with the image's header,
    every detection in order with its id and bbox, its results the box's top-k (empty for
    a skipped box)."""
    msg = result.detections.msg
    out = Detection2DArray(header=result.meta, detections=msg.detections)
    for detection, hypotheses in zip(out.detections, result.boxes):
        detection.results = [ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(
            class_id=h.class_id, score=h.score)) for h in hypotheses or ()]
    return out


def per_source_topic(input_topic):
    """<image topic>/classification, the per-camera output (per_source_output)."""
    return input_topic.rstrip('/') + '/classification'


class Outputs:
    """Publishers of one configured node; `sources`: the resolved input topics."""

    def __init__(self, node, io, sources, overlay_title):
        self.node = node
        self.gate = OutputGate()
        out = io['output_topic']
        self.classification = node.create_publisher(Classification, out, 10)
        self.label_info = node.create_publisher(LabelInfo, out + '/label_info', LATCHED)
        self.vision_info = node.create_publisher(VisionInfo, out + '/vision_info', LATCHED)
        self.diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.overlays = {None: node.create_publisher(Image, out + '/overlay', 1)}
        self.detections = None
        if io.get('detection_topics'):
            self.detections = node.create_publisher(Detection2DArray,
                                                    io['detections_output_topic'], 10)
        self.per_source = {}
        if io['per_source_output']:
            for topic in sources:
                self.per_source[topic] = node.create_publisher(
                    Classification, per_source_topic(topic), 10)
                self.overlays[topic] = node.create_publisher(
                    Image, per_source_topic(topic) + '/overlay', 1)
        self.overlay_worker = OverlayWorker(overlay_title, io['overlay_width'],
                                            node.get_logger())

    # ---- the gate -----------------------------------------------------------------------
    def open(self):
        self.gate.open()

    def close(self):
        """Nothing is published once this returns; overlays not drawn yet are dropped."""
        drained = self.gate.close()
        self.overlay_worker.discard()
        if not drained:
            self.node.get_logger().error('a publish still runs 5 s after deactivate began')

    def destroy(self):
        self.close()
        self.overlay_worker.stop()
        pubs = [self.classification, self.label_info, self.vision_info, self.diagnostics,
                *self.per_source.values(), *self.overlays.values()]
        if self.detections is not None:
            pubs.append(self.detections)
        for pub in pubs:
            self.node.destroy_publisher(pub)
        self.per_source, self.overlays = {}, {}

    # ---- publishing ---------------------------------------------------------------------
    def publish_result(self, result):
        """A pool result (worker thread): classification, per-source, overlay if watched.
        False when it was not published (gate closed, or the middleware refused)."""
        try:
            return self.gate.run(self._publish_result, result)
        except Exception:
            if self.node.context.ok():
                raise
            return False  # a signal shut the context down mid-publish: nothing to publish to

    def _publish_result(self, result):
        if result.boxes is not None:
            sent = self._send(self.detections, detections_message(result))
        else:
            msg = Classification()
            msg.header = result.meta
            msg.results = [ObjectHypothesis(class_id=h.class_id, score=h.score)
                           for h in result.hypotheses]
            sent = self._send(self.classification, msg)
            pub = self.per_source.get(result.source)
            if pub is not None:
                self._send(pub, msg)
        # The overlay only while someone looks: no drawing, no copy otherwise.
        watched = [p for p in (self.overlays.get(None), self.overlays.get(result.source))
                   if p is not None and p.get_subscription_count() > 0]
        if watched:
            boxes = None
            if result.boxes is not None:  # each classified box with its top-1
                boxes = [(rect, (result.boxes[i] or [None])[0]) for i, rect in result.plan.kept]
            self.overlay_worker.submit(result.source, result.frame, result.hypotheses,
                                       (result.meta, watched), self._publish_overlay, boxes)
        return sent

    def _publish_overlay(self, bgr, meta):
        """The overlay thread's publish: through the gate too."""
        header, pubs = meta
        msg = Image(header=header, height=bgr.shape[0], width=bgr.shape[1], encoding='bgr8',
                    is_bigendian=0, step=bgr.shape[1] * 3)
        msg.data = bgr.tobytes()
        return self.gate.run(lambda: all([self._send(pub, msg) for pub in pubs]))

    def publish_label_info(self, labels, threshold, method):
        def send():
            now = self.node.get_clock().now().to_msg()
            msg = LabelInfo()
            msg.header.stamp = now
            msg.class_map = [VisionClass(class_id=i, class_name=name)
                             for i, name in enumerate(labels)]
            msg.threshold = float(threshold)
            self._send(self.label_info, msg)
            info = VisionInfo()
            info.header.stamp = now
            info.method = method
            info.database_location = f'{self.node.get_fully_qualified_name()}/class_names'
            info.database_version = 0
            return self._send(self.vision_info, info)
        return self.gate.run(send)

    def publish_diagnostics(self, status):
        msg = DiagnosticArray()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.status = [status]
        return self.gate.run(self._send, self.diagnostics, msg)

    def _send(self, pub, msg):
        try:
            pub.publish(msg)
            return True
        except Exception as exc:  # RCLError under load, or during shutdown
            if self.node.context.ok():
                self.node.get_logger().warning(f'publish on {pub.topic_name} failed: {exc}',
                                               throttle_duration_sec=5.0)
            return False
