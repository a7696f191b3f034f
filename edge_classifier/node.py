"""The classifier node: ROS wiring only (parameters, topics, QoS, threads).

Frames from the subscriptions go into the pipeline's latest-frame slots (the callbacks
only store the message); the worker pool converts, infers and publishes from its own
threads, so the executor never blocks on inference and a slow model drops stale frames.
"""
import sys

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import (Classification, LabelInfo, ObjectHypothesis, VisionClass,
                             VisionInfo)

from . import config as model_config
from .backends import BackendError
from .config import ConfigError
from .frames import compressed_msg_to_frame, image_msg_to_frame
from .pipeline import Classifier, WorkerPool
from .postprocess import LabelsError
from .ros_main import run_node

try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

# Parameters that take effect at run time; every other one of this node's parameters is
# fixed at startup and a change is refused (use_sim_time is rclpy's own).
RUNTIME_KEYS = frozenset({'top_k', 'score_threshold', 'use_sim_time'})
ERROR_STREAK = 5  # consecutive backend failures before diagnostics report ERROR


class StartupError(RuntimeError):
    """A parameter, config, model or labels file the node cannot start with."""


def _descriptor(text, read_only=False, dynamic=False):
    return ParameterDescriptor(description=text, read_only=read_only, dynamic_typing=dynamic)


def _topic_list(name, value):
    """A topic-list parameter: a list of names (a single string is one topic)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise StartupError(f'parameter {name}: expected a list of topic names, got {value!r}')
    return [t for t in value if t]


class ClassifierNode(Node):

    def __init__(self, **kwargs):
        super().__init__('edge_classifier', **kwargs)
        self.cfg = self._declare_model_parameters()
        io = self._declare_io_parameters()
        self._reject_unknown_parameters()
        try:
            self.classifier = Classifier(self.cfg)
        except (BackendError, LabelsError) as exc:
            raise StartupError(str(exc)) from exc
        backend = self.classifier.backend
        if self.classifier.untrained:
            self.get_logger().error(
                f'MODEL HAS UNTRAINED (RANDOM) WEIGHTS: {backend.describe()}. Its classes are '
                f'meaningless; use it for speed measurements only.')
        self.get_logger().info(f'model {self.cfg.model_name}: {backend.describe()}, '
                               f'{self.cfg.workers} workers')

        reliable_latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.output_topic = io['output_topic']
        self.pub = self.create_publisher(Classification, self.output_topic, 10)
        self.label_pub = self.create_publisher(LabelInfo, self.output_topic + '/label_info',
                                               reliable_latched)
        self.info_pub = self.create_publisher(VisionInfo, self.output_topic + '/vision_info',
                                              reliable_latched)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.source_pubs = {}

        self.depth = io['depth']
        self.pool = WorkerPool(self.classifier, self.cfg.workers, on_result=self._publish,
                               on_error=self._on_frame_error)
        self._publish_label_info()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pool.start()
        self.diag_timer = self.create_timer(float(io['diagnostics_period']),
                                            self._publish_diagnostics)
        # Inputs last: once a camera sees this node subscribed, everything else is ready.
        self.subs = {}  # resolved topic -> (subscription, reliability, msg type, to_frame)
        self._waiting = {}      # auto: resolved topic -> (msg_type, to_frame), no publisher yet
        self._downgrade = set()  # auto: topics whose reliable subscription met a best-effort pub
        for msg_type, topics, to_frame in (
                (Image, io['image_topics'], image_msg_to_frame),
                (CompressedImage, io['compressed_topics'], compressed_msg_to_frame)):
            for topic in topics:
                resolved = self.resolve_topic_name(topic)
                if io['per_source_output']:
                    self.source_pubs[resolved] = self.create_publisher(
                        Classification, resolved.rstrip('/') + '/classification', 10)
                if io['reliability'] == 'auto':
                    self._waiting[resolved] = (msg_type, to_frame)
                else:
                    self._subscribe(msg_type, resolved, to_frame, io['reliability'])
        if io['reliability'] == 'auto':
            self._match_publishers()
            self.match_timer = self.create_timer(0.5, self._match_publishers)

    # ---- parameters ---------------------------------------------------------------------
    def _declare_model_parameters(self):
        model = self.declare_parameter(
            'model', '', _descriptor('model config: a name from config/ or a YAML path; its '
                                     'values are the defaults of the model parameters',
                                     read_only=True)).value
        try:
            base = model_config.load_config(model) if model else model_config.ModelConfig()
        except ConfigError as exc:
            raise StartupError(f'parameter model: {exc}') from exc
        values = {}
        for key, default in base.to_dict().items():
            param = self.declare_parameter(
                key, default, _descriptor(f'model config key {key} (see config/*.yaml)',
                                          dynamic=True))
            values[key] = param.value
        origin = f'parameters of {self.get_fully_qualified_name()}'
        try:
            cfg = model_config.from_dict(values, origin=origin)
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        cfg.origin = base.origin or origin
        return cfg

    def _declare_io_parameters(self):
        def declare(name, default, text):
            # dynamic typing: a wrong type is reported by the checks below, by name
            return self.declare_parameter(name, default, _descriptor(text, dynamic=True)).value

        image_topics = declare('image_topics', ['/image_raw'], 'sensor_msgs/Image topics')
        compressed = self.declare_parameter(
            'compressed_topics', Parameter.Type.STRING_ARRAY,
            _descriptor('sensor_msgs/CompressedImage topics (jpeg, png)')).value or []
        io = {
            'image_topics': _topic_list('image_topics', image_topics),
            'compressed_topics': _topic_list('compressed_topics', compressed),
            'reliability': declare(
                'reliability', 'auto',
                'input QoS reliability: auto (match the camera: reliable when every publisher '
                'is reliable, else best effort), best_effort (REP-2003 sensor data) or '
                'reliable'),
            'depth': declare('depth', 1, 'input QoS history depth'),
            'output_topic': declare('output_topic', '/classification',
                                    'vision_msgs/Classification output topic'),
            'diagnostics_period': declare('diagnostics_period', 1.0,
                                          'seconds between /diagnostics messages'),
            'per_source_output': declare(
                'per_source_output', False,
                'also publish each source on <image topic>/classification'),
        }
        if io['reliability'] not in ('auto', 'best_effort', 'reliable'):
            raise StartupError(f'parameter reliability: {io["reliability"]!r} is not one of '
                               f'auto, best_effort, reliable')
        for key in ('reliability', 'output_topic'):
            if not isinstance(io[key], str):
                raise StartupError(f'parameter {key}: expected a string, got {io[key]!r}')
        if isinstance(io['depth'], bool) or not isinstance(io['depth'], int) or io['depth'] < 1:
            raise StartupError(f'parameter depth: must be an integer >= 1, got {io["depth"]!r}')
        if not io['image_topics'] and not io['compressed_topics']:
            raise StartupError('parameters image_topics and compressed_topics are both empty: '
                               'nothing to classify')
        period = io['diagnostics_period']
        if isinstance(period, bool) or not isinstance(period, (int, float)) or period <= 0:
            raise StartupError(f'parameter diagnostics_period: must be a number of seconds > 0, '
                               f'got {io["diagnostics_period"]!r}')
        if not io['output_topic']:
            raise StartupError('parameter output_topic must not be empty')
        return io

    def _reject_unknown_parameters(self):
        """A params file key this node does not know is a typo: fail, do not ignore it."""
        overrides = getattr(self, '_parameter_overrides', {})  # rclpy keeps them here
        unknown = sorted(name for name in overrides
                         if not self.has_parameter(name) and not name.startswith('qos_overrides.'))
        if unknown:
            raise StartupError(f'unknown parameter(s) {", ".join(unknown)}; this node takes: '
                               f'{", ".join(sorted(self._parameters))}')

    def _on_set_parameters(self, params):
        changes = {}
        for p in params:
            if p.name not in RUNTIME_KEYS:
                return SetParametersResult(
                    successful=False,
                    reason=f'{p.name} needs a restart of the node (model, backend, workers and '
                           f'topics are fixed at startup); only top_k and score_threshold change '
                           f'at run time')
            if p.name in ('top_k', 'score_threshold'):
                changes[p.name] = p.value
        if not changes:
            return SetParametersResult(successful=True)
        try:
            updated = self.cfg.replace(**changes)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.cfg = updated
        self.classifier.top_k = updated.top_k
        self.classifier.score_threshold = updated.score_threshold
        self.get_logger().info(f'now top_k={updated.top_k}, '
                               f'score_threshold={updated.score_threshold}')
        return SetParametersResult(successful=True)

    # ---- topics -------------------------------------------------------------------------
    def _match_publishers(self):
        """auto reliability: subscribe once a topic has publishers, matching their QoS.

        Large frames from a reliable camera arrive reliably (a best-effort subscriber loses
        most frames over ~512 KiB with Fast DDS defaults); a best-effort camera is matched
        with best effort. A reliable subscription that later meets a best-effort publisher
        is re-created best effort.
        """
        for topic in sorted(self._downgrade):
            self._downgrade.discard(topic)
            entry = self.subs.pop(topic, None)
            if entry is not None:
                sub, _, msg_type, to_frame = entry
                self.destroy_subscription(sub)
                self._subscribe(msg_type, topic, to_frame, 'best_effort', auto=True)
        for topic, (msg_type, to_frame) in list(self._waiting.items()):
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                           for i in infos)
            del self._waiting[topic]
            self._subscribe(msg_type, topic, to_frame,
                            'reliable' if reliable else 'best_effort', auto=True)

    def _subscribe(self, msg_type, topic, to_frame, reliability, auto=False):
        qos = QoSProfile(depth=self.depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                                      else ReliabilityPolicy.BEST_EFFORT))

        def incompatible(event, t=topic):
            if auto and reliability == 'reliable':
                self.get_logger().warning(f'{t}: a best-effort publisher appeared; '
                                          f're-subscribing best effort')
                self._downgrade.add(t)
                return
            self.get_logger().error(
                f'{t}: a publisher has incompatible QoS ({event.last_policy_kind}); this node '
                f'subscribes with reliability={reliability}: set the reliability parameter to '
                f'auto or to match the camera')

        def on_frame(msg, source=topic):
            self.pool.submit(source, lambda: to_frame(msg), msg.header)

        sub = self.create_subscription(
            msg_type, topic, on_frame, qos,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible))
        self.subs[topic] = (sub, reliability, msg_type, to_frame)
        self.get_logger().info(f'subscribed to {topic} ({msg_type.__name__}, {reliability}'
                               f'{", matching its publishers" if auto else ""})')

    def _publish(self, result):
        msg = Classification()
        msg.header = result.meta
        msg.results = [ObjectHypothesis(class_id=h.class_id, score=h.score)
                       for h in result.hypotheses]
        self._safe_publish(self.pub, msg)
        pub = self.source_pubs.get(result.source)
        if pub is not None:
            self._safe_publish(pub, msg)

    def _safe_publish(self, pub, msg):
        try:
            pub.publish(msg)
        except Exception as exc:  # RCLError under load, or during shutdown
            self.get_logger().warning(f'publish on {pub.topic_name} failed: {exc}',
                                      throttle_duration_sec=5.0)

    def _on_frame_error(self, source, kind, exc):
        if kind == 'malformed':
            self.get_logger().warning(f'{source}: dropped a malformed frame: {exc}',
                                      throttle_duration_sec=2.0)
        else:
            self.get_logger().error(f'{source}: inference failed: {type(exc).__name__}: {exc}',
                                    throttle_duration_sec=2.0)

    def _publish_label_info(self):
        labels = self.classifier.labels or [str(i) for i in range(self.cfg.num_classes)]
        self.declare_parameter('class_names', labels,
                               _descriptor('class names by class_id (the label database)',
                                           read_only=True))
        msg = LabelInfo()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.class_map = [VisionClass(class_id=i, class_name=name) for i, name in enumerate(labels)]
        msg.threshold = float(self.cfg.score_threshold)
        self.label_pub.publish(msg)
        info = VisionInfo()
        info.header.stamp = msg.header.stamp
        info.method = f'{self.cfg.model_name} ({self.classifier.backend.name}, NV12 ' \
                      f'{self.cfg.input_width}x{self.cfg.input_height})'
        info.database_location = f'{self.get_fully_qualified_name()}/class_names'
        info.database_version = 0
        self.info_pub.publish(info)

    # ---- diagnostics --------------------------------------------------------------------
    def _publish_diagnostics(self):
        s = self.pool.stats()
        status = DiagnosticStatus()
        status.name = f'{self.get_name()}: classifier'
        status.hardware_id = self.classifier.backend.name
        if s['consecutive_errors'] >= ERROR_STREAK:
            status.level, status.message = DiagnosticStatus.ERROR, \
                f'inference failing: {s["consecutive_errors"]} errors in a row'
        elif self.classifier.untrained:
            status.level, status.message = DiagnosticStatus.WARN, 'model has untrained weights'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'classifying'
        fmt = {'input_fps': '{:.1f}', 'classified_fps': '{:.1f}'}
        values = [('model', self.cfg.model_name), ('backend', self.classifier.backend.name),
                  ('model_path', str(self.classifier.backend.model_path)),
                  ('workers', str(s['workers']))]
        for key in ('input_fps', 'classified_fps', 'received', 'classified', 'dropped',
                    'malformed', 'errors', 'inference_ms_p50', 'inference_ms_p99',
                    'end_to_end_ms_p50', 'end_to_end_ms_p99'):
            value = s[key]
            values.append((key, fmt.get(key, '{:.2f}' if isinstance(value, float) else '{}')
                           .format(value)))
        for topic, entry in self.subs.items():
            values.append((f'{topic}: reliability', entry[1]))
        for topic in self._waiting:
            values.append((f'{topic}: reliability', 'auto: waiting for a publisher'))
        for source, st in s['sources'].items():
            counts = (st.received, st.classified, st.dropped, st.malformed, st.errors)
            values.append((f'{source}: received/classified/dropped/malformed/errors',
                           '/'.join(map(str, counts))))
            if st.last_error:
                values.append((f'{source}: last error', st.last_error[:200]))
        status.values = [KeyValue(key=k, value=v) for k, v in values]
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self._safe_publish(self.diag_pub, msg)

    def shutdown(self):
        self.pool.stop()
        self.classifier.close()


def main(args=None):
    return run_node(ClassifierNode, (StartupError, ConfigError, ParameterException),
                    'edge_classifier', args)


if __name__ == '__main__':
    sys.exit(main())
