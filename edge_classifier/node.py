"""The classifier node: ROS wiring only (parameters, topics, QoS, threads).

Frames from the subscriptions go into the pipeline's latest-frame slots (the callbacks
only store the message); the worker pool converts, infers and publishes from its own
threads, so the executor never blocks on inference and a slow model drops stale frames.

The wiring is one mixin with the steps of a managed node (declare, configure, activate,
deactivate, cleanup): ClassifierNode runs them all at construction, the lifecycle node
(lifecycle_node.py) runs them on its transitions.
"""
import sys

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import (Classification, LabelInfo, ObjectHypothesis, VisionClass,
                             VisionInfo)

from . import config as model_config
from .compat import SubscriptionEventCallbacks
from .config import RELIABILITIES, ConfigError
from .errors import EdgeClassifierError
from .frames import DEFAULT_MAX_IMAGE_PIXELS, compressed_msg_to_frame, image_msg_to_frame
from .overlay import OverlayWorker
from .pipeline import Classifier, Settings, WorkerPool
from .ros_main import run_node


NODE_NAME = 'edge_classifier'
# Parameters that take effect at run time; every other one is read-only (fixed at startup).
RUNTIME_KEYS = ('top_k', 'score_threshold')
RESTART = 'Read-only: fixed at startup, restart the node to change it.'
ERROR_STREAK = 5  # consecutive backend failures before diagnostics report ERROR
INT_MAX = 2 ** 31 - 1

# Ranges of the model config keys, shown by `ros2 param describe` (config.py validates).
_INT_RANGES = {'workers': (1, 64), 'input_width': (2, 8192), 'input_height': (2, 8192),
               'resize_short_side': (0, 8192), 'num_classes': (1, INT_MAX),
               'ort_intra_op_threads': (0, 64), 'bpu_core_id': (0, 64), 'bpu_priority': (0, 255)}
_CHOICES = {'resize_mode': model_config.RESIZE_MODES,
            'channel_order': model_config.CHANNEL_ORDERS, 'backend': model_config.BACKENDS,
            'ort_graph_optimization': model_config.GRAPH_OPTIMIZATIONS,
            'ort_spinning': model_config.ORT_SPINNING}


class StartupError(EdgeClassifierError):
    """A parameter, config, model or labels file the node cannot start with."""


def _topic_list(name, value):
    """A topic-list parameter: a list of names (a single string is one topic)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise StartupError(f'parameter {name}: expected a list of topic names, got {value!r}')
    return [t for t in value if t]


def _number(name, value, low, kind=float):
    """A numeric parameter (an integer is accepted where a float is meant)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or value < low:
        what = 'a number' if kind is float else 'an integer'
        raise StartupError(f'parameter {name}: expected {what} >= {low}, got {value!r}')
    return kind(value)


class ClassifierWiring:
    """Parameters, topics and threads of the classifier, for a Node or a LifecycleNode."""

    # ---- declare (constructor) ----------------------------------------------------------
    def _declare_all(self):
        """Declare every parameter; returns (model config, io settings) or raises."""
        self.classifier = self.pool = self.pub = self.label_pub = self.diag_timer = None
        self.info_pub = self.diag_pub = self.overlay = self._downgrade_timer = None
        self.subs, self.source_pubs, self.overlay_pubs = {}, {}, {}
        self._active = False
        self._model_origin = 'the node\'s parameters'
        cfg = self._declare_model_parameters()
        io = self._declare_io_parameters()
        self._reject_unknown_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        return cfg, io

    def _declare(self, name, default, text, read_only=True, dynamic=True, **ranges):
        """declare_parameter with a descriptor; an out-of-range value names its origin."""
        if read_only:
            text = f'{text} {RESTART}'
        descriptor = ParameterDescriptor(description=text, read_only=read_only,
                                         dynamic_typing=dynamic, **ranges)
        try:
            return self.declare_parameter(name, default, descriptor).value
        except InvalidParameterValueException as exc:
            raise StartupError(f'parameter {name} ({self._where(name)}): {exc}') from exc

    def _overrides(self):
        """Values given with -p or --params-file (rclpy keeps them here)."""
        return getattr(self, '_parameter_overrides', {})

    def _where(self, key):
        """Where a parameter's value came from, for error messages."""
        if key in self._overrides():
            return f'set on {self.get_fully_qualified_name()} (-p or --params-file)'
        return self._model_origin

    def _declare_model_parameters(self):
        model = self._declare(
            'model', 'efficientnet_lite0',
            'model config: a name from the package\'s config/ (e.g. mobilenetv3) or a path to '
            'a model YAML; its values are the defaults of the model parameters.')
        if not isinstance(model, str) or not model:
            raise StartupError(f'parameter model: expected a config name or YAML path, got '
                               f'{model!r}')
        try:
            base = model_config.load_config(model)
        except ConfigError as exc:
            raise StartupError(f'parameter model: {exc}') from exc
        self._model_origin = base.origin
        values = {}
        for key, default in base.to_dict().items():
            ranges = {}
            if key in _INT_RANGES:
                low, high = _INT_RANGES[key]
                ranges['integer_range'] = [IntegerRange(from_value=low, to_value=high, step=1)]
            text = f'model config key {key} (default from {base.origin}).'
            if key in _CHOICES:
                text += f' One of: {", ".join(_CHOICES[key])}.'
            if key == 'top_k':
                classes = values['num_classes']
                top = classes if isinstance(classes, int) and classes >= 1 else INT_MAX
                ranges['integer_range'] = [IntegerRange(from_value=1, to_value=top, step=1)]
                text = 'how many classes each Classification carries (best first).'
            elif key == 'score_threshold':
                ranges['floating_point_range'] = [FloatingPointRange(
                    from_value=0.0, to_value=1.0, step=0.0)]
                text = 'classes scoring below this are left out (LabelInfo.threshold).'
            values[key] = self._declare(key, default, text, read_only=key not in RUNTIME_KEYS,
                                        **ranges)
        overridden = sorted(k for k in values if k in self._overrides())
        origin = base.origin + (f' with parameters {", ".join(overridden)} set on '
                                f'{self.get_fully_qualified_name()}' if overridden else '')
        try:
            return model_config.from_dict(values, origin=origin)
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc

    def _declare_io_parameters(self):
        image_topics = self._declare(
            'image_topics', ['image_raw'], 'sensor_msgs/Image topics (relative names follow '
            'the node\'s namespace and remaps).')
        compressed = self._declare(
            'compressed_topics', Parameter.Type.STRING_ARRAY,
            'sensor_msgs/CompressedImage topics (jpeg, png).', dynamic=False) or []
        reliability = self._declare(
            'reliability', 'auto',
            'input QoS reliability: auto (reliable, re-subscribing best effort when a '
            'best-effort camera appears), reliable, or best_effort (REP-2003 sensor data).',
            additional_constraints='one of ' + ', '.join(RELIABILITIES))
        depth = self._declare('depth', 1, 'input QoS history depth (the node keeps only the '
                              'newest frame per camera).',
                              integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)])
        output_topic = self._declare('output_topic', 'classification',
                                     'vision_msgs/Classification output topic; label_info and '
                                     'vision_info are published under it.')
        period = self._declare(
            'diagnostics_period', 1.0, 'seconds between /diagnostics messages.',
            floating_point_range=[FloatingPointRange(from_value=0.01, to_value=3600.0,
                                                     step=0.0)])
        per_source = self._declare('per_source_output', False,
                                   'also publish each source on <image topic>/classification '
                                   '(and its overlay on <image topic>/classification/overlay).')
        overlay_width = self._declare(
            'overlay_width', 640, 'width of the overlay image (classification/overlay, drawn '
            'only while it has subscribers); 0 = the source frame\'s size.',
            integer_range=[IntegerRange(from_value=0, to_value=7680, step=1)])
        max_pixels = self._declare(
            'max_image_pixels', DEFAULT_MAX_IMAGE_PIXELS,
            'compressed frames whose JPEG/PNG header declares more pixels are refused before '
            'decoding and counted as malformed (a decompression bomb costs nothing); '
            '0 = no limit.',
            integer_range=[IntegerRange(from_value=0, to_value=INT_MAX, step=1)])
        io = {'image_topics': _topic_list('image_topics', image_topics),
              'compressed_topics': _topic_list('compressed_topics', compressed),
              'reliability': reliability, 'depth': _number('depth', depth, 1, int),
              'output_topic': output_topic,
              'diagnostics_period': _number('diagnostics_period', period, 0.01),
              'per_source_output': per_source,
              'overlay_width': _number('overlay_width', overlay_width, 0, int),
              'max_image_pixels': _number('max_image_pixels', max_pixels, 0, int)}
        if reliability not in RELIABILITIES:
            raise StartupError(f'parameter reliability: {reliability!r} is not one of '
                               + ', '.join(RELIABILITIES))
        if not isinstance(output_topic, str) or not output_topic:
            raise StartupError(f'parameter output_topic: expected a topic name, got '
                               f'{output_topic!r}')
        if not isinstance(per_source, bool):
            raise StartupError(f'parameter per_source_output: expected true or false, got '
                               f'{per_source!r}')
        if not io['image_topics'] and not io['compressed_topics']:
            raise StartupError('parameters image_topics and compressed_topics are both empty: '
                               'nothing to classify')
        return io

    def _reject_unknown_parameters(self):
        """A params file key this node does not know is a typo: fail, do not ignore it."""
        unknown = sorted(name for name in self._overrides()
                         if not self.has_parameter(name) and not name.startswith('qos_overrides.'))
        if unknown:
            raise StartupError(f'unknown parameter(s) {", ".join(unknown)}; this node takes: '
                               f'{", ".join(sorted(self._parameters))}')

    def _on_set_parameters(self, params):
        """top_k and score_threshold at run time, applied together as one Settings object.

        Read-only parameters never get here (rclpy refuses them, their description says a
        restart is needed).
        """
        changes = {p.name: p.value for p in params if p.name in RUNTIME_KEYS}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            updated = self.cfg.replace(**changes)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        threshold_changed = updated.score_threshold != self.cfg.score_threshold
        self.cfg = updated
        if self.classifier is not None:
            self.classifier.settings = Settings.from_config(updated)
            if threshold_changed and self.label_pub is not None:
                self._publish_label_info()
        self.get_logger().info(f'now top_k={updated.top_k}, '
                               f'score_threshold={updated.score_threshold}')
        return SetParametersResult(successful=True)

    # ---- configure: load the model, make the publishers ---------------------------------
    def _configure(self):
        try:
            self.classifier = Classifier(self.cfg)
        except EdgeClassifierError as exc:
            raise StartupError(str(exc)) from exc
        backend = self.classifier.backend
        if self.classifier.untrained:
            self.get_logger().error(
                f'MODEL HAS UNTRAINED (RANDOM) WEIGHTS: {backend.describe()}. Its classes are '
                f'meaningless; use it for speed measurements only.')
        self.get_logger().info(f'model {self.cfg.model_name} ({self.cfg.origin}): '
                               f'{backend.describe()}, {self.cfg.workers} workers')
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        out = self.io['output_topic']
        self.pub = self.create_publisher(Classification, out, 10)
        self.label_pub = self.create_publisher(LabelInfo, out + '/label_info', latched)
        self.info_pub = self.create_publisher(VisionInfo, out + '/vision_info', latched)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        if not self.has_parameter('class_names'):
            labels = self.classifier.labels or [str(i) for i in range(self.cfg.num_classes)]
            self.declare_parameter('class_names', labels, ParameterDescriptor(
                description='class names by class_id (the label database).', read_only=True))
        self.overlay_pubs[None] = self.create_publisher(Image, out + '/overlay', 1)
        # The inputs, resolved once: (message type, topic, frame conversion). A JPEG is
        # decoded no larger than this model's input needs; a huge one is refused unread.
        geometry, max_pixels = self.classifier.geometry, self.io['max_image_pixels']

        def decompress(msg):
            return compressed_msg_to_frame(msg, max_pixels, geometry)

        self.inputs = [(msg_type, self.resolve_topic_name(topic), to_frame)
                       for msg_type, topics, to_frame in (
                           (Image, self.io['image_topics'], image_msg_to_frame),
                           (CompressedImage, self.io['compressed_topics'], decompress))
                       for topic in topics]
        if self.io['per_source_output']:
            for _, topic, _ in self.inputs:
                per_source = topic.rstrip('/') + '/classification'
                self.source_pubs[topic] = self.create_publisher(Classification, per_source, 10)
                self.overlay_pubs[topic] = self.create_publisher(Image, per_source + '/overlay',
                                                                 1)
        self.overlay = OverlayWorker(f'{self.cfg.model_name} ({backend.name})',
                                     self.io['overlay_width'], self.get_logger())
        self.pool = WorkerPool(self.classifier, self.cfg.workers, on_result=self._publish,
                               on_error=self._on_frame_error, logger=self.get_logger())
        self.pool.start()
        # One timer re-creates subscriptions that met an incompatible best-effort camera
        # (never from inside the subscription's own event callback); idle until needed.
        self._downgrade = set()
        self._downgrade_timer = self.create_timer(0.05, self._apply_downgrades)
        self._downgrade_timer.cancel()

    # ---- activate: label map, inputs, diagnostics ---------------------------------------
    def _activate(self):
        self._publish_label_info()
        self.diag_timer = self.create_timer(self.io['diagnostics_period'],
                                            self._publish_diagnostics)
        reliability = 'reliable' if self.io['reliability'] == 'auto' else self.io['reliability']
        for msg_type, topic, to_frame in self.inputs:
            self._subscribe(msg_type, topic, to_frame, reliability)
        self._active = True

    def _deactivate(self):
        self._active = False
        for sub, *_ in self.subs.values():
            self.destroy_subscription(sub)
        self.subs = {}
        if self.diag_timer is not None:
            self.destroy_timer(self.diag_timer)
            self.diag_timer = None

    def _cleanup(self):
        """Stop the workers and unload the model (the publishers go with the node)."""
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.overlay is not None:
            self.overlay.stop()
            self.overlay = None
        if self.classifier is not None:
            self.classifier.close()
            self.classifier = None

    def _destroy_outputs(self):
        """Undo the publishers and the timer of _configure (a managed node's cleanup)."""
        pubs = [self.pub, self.label_pub, self.info_pub, self.diag_pub,
                *self.source_pubs.values(), *self.overlay_pubs.values()]
        for pub in pubs:
            if pub is not None:
                self.destroy_publisher(pub)
        self.pub = self.label_pub = self.info_pub = self.diag_pub = None
        self.source_pubs, self.overlay_pubs = {}, {}
        if self._downgrade_timer is not None:
            self.destroy_timer(self._downgrade_timer)
            self._downgrade_timer = None

    def destroy_node(self):
        """The node owns its threads: stop them before rclpy destroys the node."""
        self._deactivate()
        self._cleanup()
        return super().destroy_node()

    # ---- topics -------------------------------------------------------------------------
    def _subscribe(self, msg_type, topic, to_frame, reliability):
        qos = QoSProfile(depth=self.io['depth'], history=HistoryPolicy.KEEP_LAST,
                         reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                                      else ReliabilityPolicy.BEST_EFFORT))
        auto = self.io['reliability'] == 'auto'

        def incompatible(event, t=topic):
            if auto and reliability == 'reliable':
                self.get_logger().warning(f'{t}: a best-effort publisher appeared; '
                                          f're-subscribing best effort')
                self._downgrade.add(t)
                self._downgrade_timer.reset()
                return
            self.get_logger().error(
                f'{t}: a publisher has incompatible QoS ({event.last_policy_kind}); this node '
                f'subscribes with reliability={reliability}: set the reliability parameter to '
                f'auto or to match the camera')

        def on_frame(msg, source=topic):
            if self.pool is not None:
                self.pool.submit(source, lambda: to_frame(msg), msg.header)

        sub = self.create_subscription(
            msg_type, topic, on_frame, qos,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible))
        self.subs[topic] = (sub, reliability, msg_type, to_frame)
        self.get_logger().info(f'subscribed to {topic} ({msg_type.__name__}, {reliability}'
                               f'{", auto" if auto else ""})')

    def _apply_downgrades(self):
        self._downgrade_timer.cancel()
        for topic in sorted(self._downgrade):
            entry = self.subs.pop(topic, None)
            if entry is not None and entry[1] == 'reliable':
                sub, _, msg_type, to_frame = entry
                self.destroy_subscription(sub)
                self._subscribe(msg_type, topic, to_frame, 'best_effort')
            elif entry is not None:
                self.subs[topic] = entry
        self._downgrade.clear()

    def _publish(self, result):
        # A frame still in a worker when the node was deactivated, or when a signal shut
        # the context down before the workers were joined: nothing to publish to.
        if not self._active or not self.context.ok():
            return
        try:
            self._publish_result(result)
        except Exception:
            if self.context.ok():
                raise
            # the context was shut down between the check above and a call into rcl

    def _publish_result(self, result):
        msg = Classification()
        msg.header = result.meta
        msg.results = [ObjectHypothesis(class_id=h.class_id, score=h.score)
                       for h in result.hypotheses]
        self._safe_publish(self.pub, msg)
        pub = self.source_pubs.get(result.source)
        if pub is not None:
            self._safe_publish(pub, msg)
        # The overlay only while someone looks: no drawing, no copy otherwise.
        watched = [p for p in (self.overlay_pubs.get(None), self.overlay_pubs.get(result.source))
                   if p is not None and p.get_subscription_count() > 0]
        if watched and self.overlay is not None:
            self.overlay.submit(result.frame, result.hypotheses, (result.meta, watched),
                                self._publish_overlay)

    def _publish_overlay(self, bgr, meta):
        header, pubs = meta
        msg = Image(header=header, height=bgr.shape[0], width=bgr.shape[1], encoding='bgr8',
                    is_bigendian=0, step=bgr.shape[1] * 3)
        msg.data = bgr.tobytes()
        for pub in pubs:
            self._safe_publish(pub, msg)

    def _safe_publish(self, pub, msg):
        try:
            pub.publish(msg)
        except Exception as exc:  # RCLError under load, or during shutdown
            if not self.context.ok():
                return
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
        labels = self.get_parameter('class_names').value
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
        if self.pool is None:
            return
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
        if self.overlay is not None:
            values.append(('overlays', f'{self.overlay.drawn} drawn, {self.overlay.dropped} '
                                       f'dropped (only while classification/overlay is watched)'))
        for topic, entry in self.subs.items():
            values.append((f'{topic}: reliability', entry[1]))
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


class ClassifierNode(ClassifierWiring, Node):
    """The plain node: declared, configured and active from construction on."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.cfg, self.io = self._declare_all()
        try:
            self._configure()
            self._activate()  # inputs last: once a camera sees a subscriber, all is ready
        except BaseException:
            self._cleanup()
            raise


def main(args=None):
    return run_node(ClassifierNode, NODE_NAME, args, large_frames=True)  # the overlay


if __name__ == '__main__':
    sys.exit(main())
