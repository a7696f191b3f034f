"""The node's parameters: declared with descriptors, checked, turned into a ModelConfig
(`cfg`) and the I/O settings (`io`); top_k and score_threshold change at run time."""
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import InvalidParameterValueException
from rclpy.parameter import Parameter

from .. import config as model_config
from ..config import RELIABILITIES, ConfigError
from ..errors import EdgeClassifierError
from ..frames import DEFAULT_MAX_IMAGE_PIXELS

# Parameters that take effect at run time; every other one is read-only (fixed at startup).
RUNTIME_KEYS = ('top_k', 'score_threshold')
RESTART = 'Read-only: fixed at startup, restart the node to change it.'
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


class NodeParameters:
    """Declares every parameter of `node` at construction; `cfg` and `io` are the checked
    values. on_change(cfg) is called after a run-time change (top_k, score_threshold)."""

    def __init__(self, node):
        self.node = node
        self.on_change = None
        self._model_origin = 'the node\'s parameters'
        self.cfg = self._declare_model_parameters()
        self.io = self._declare_io_parameters()
        self._reject_unknown_parameters()
        node.add_on_set_parameters_callback(self._on_set_parameters)

    def _declare(self, name, default, text, read_only=True, dynamic=True, **ranges):
        """declare_parameter with a descriptor; an out-of-range value names its origin."""
        if read_only:
            text = f'{text} {RESTART}'
        descriptor = ParameterDescriptor(description=text, read_only=read_only,
                                         dynamic_typing=dynamic, **ranges)
        try:
            return self.node.declare_parameter(name, default, descriptor).value
        except InvalidParameterValueException as exc:
            raise StartupError(f'parameter {name} ({self._where(name)}): {exc}') from exc

    def _overrides(self):
        """Values given with -p or --params-file (rclpy keeps them here)."""
        return getattr(self.node, '_parameter_overrides', {})

    def _where(self, key):
        """Where a parameter's value came from, for error messages."""
        if key in self._overrides():
            return f'set on {self.node.get_fully_qualified_name()} (-p or --params-file)'
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
                                f'{self.node.get_fully_qualified_name()}' if overridden else '')
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
        node = self.node
        unknown = sorted(name for name in self._overrides()
                         if not node.has_parameter(name) and not name.startswith('qos_overrides.'))
        if unknown:
            raise StartupError(f'unknown parameter(s) {", ".join(unknown)}; this node takes: '
                               f'{", ".join(sorted(node._parameters))}')

    def _on_set_parameters(self, params):
        """top_k and score_threshold at run time, applied together as one ModelConfig.

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
        self.cfg = updated
        if self.on_change is not None:
            self.on_change(updated)
        self.node.get_logger().info(f'now top_k={updated.top_k}, '
                                    f'score_threshold={updated.score_threshold}')
        return SetParametersResult(successful=True)
