"""Every parameter of the classifier, in one table (ROS-free).

From this table come: the model YAML's validation (config.py), the node's parameter
descriptors and checks (wiring/parameters.py), the launch file's argument checks
(launch_args.py) and the README's parameter table (`python -m edge_classifier.params`;
test_params.py fails when the README and the table differ).

A `model` row is a key of the model YAML (config/<model>.yaml): the node's default comes
from the YAML that the `model` parameter names. Every row is a node parameter, so each
shipped model YAML is also a valid params file for the node (`--params-file`, a launch
file's `parameters=[...]`): the provenance rows (where a model comes from, read by the
models tool) are read-only parameters that describe the loaded model.
"""
import sys
from dataclasses import dataclass
from typing import Any, Optional, Tuple

INT_MAX = 2 ** 31 - 1
# The frames' pixel budget: above 8K video (7680 x 4320 = 33.2 MP), 120 MB of BGR decoded.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000

RESIZE_MODES = ('resize_crop', 'letterbox', 'stretch')
CHANNEL_ORDERS = ('rgb', 'bgr')
BACKENDS = ('auto', 'onnxruntime', 'bpu')
GRAPH_OPTIMIZATIONS = ('disable', 'basic', 'extended', 'all')
ORT_SPINNING = ('never', 'in_run', 'always')
RELIABILITIES = ('auto', 'reliable', 'best_effort')

_KINDS = {'str': 'a string', 'int': 'an integer', 'float': 'a number', 'bool': 'true or false',
          'str[]': 'a list of strings', 'float[3]': 'a list of 3 numbers (one per channel)'}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                      # one of _KINDS
    default: Any
    text: str                      # what it does, one sentence
    low: Optional[float] = None
    high: Optional[float] = None
    unit: str = ''
    high_text: str = ''            # how the upper bound reads when it depends on another key
    choices: Tuple[str, ...] = ()
    runtime: bool = False          # takes effect while the node runs (else fixed once configured)
    model: bool = False            # a model YAML key: the default comes from the model's YAML
    above: Optional[float] = None  # a number must be greater than this (a rate: > 0)
    items: str = 'topic names'     # what a 'str[]' lists

    def check(self, value):
        """The value converted to the parameter's type; ValueError says what is wrong."""
        kind = self.kind
        if kind == 'bool':
            if not isinstance(value, bool):
                raise ValueError(f'expected true or false, got {value!r}')
            return value
        if kind in ('int', 'float'):
            allowed = int if kind == 'int' else (int, float)
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise ValueError(f'expected {self._expected()}, got {value!r}')
            if (self.low is not None and value < self.low) or \
                    (self.high is not None and value > self.high) or \
                    (self.above is not None and value <= self.above):
                raise ValueError(f'expected {self._expected()}, got {value!r}')
            return float(value) if kind == 'float' else value
        if kind == 'float[3]':
            if (not isinstance(value, (list, tuple)) or len(value) != 3 or
                    any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
                raise ValueError(f'expected {_KINDS[kind]}, got {value!r}')
            return [float(v) for v in value]
        if kind == 'str[]':
            if value is None:  # `-p key:=[]`: rcl cannot type an empty list, it arrives unset
                value = []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f'expected a list of {self.items}, got {value!r}')
            return [v for v in value if v]
        if value is None:
            value = ''
        if not isinstance(value, str):
            raise ValueError(f'expected a string, got {value!r}')
        if self.choices and value not in self.choices:
            raise ValueError(f'{value!r} is not one of {", ".join(self.choices)}')
        return value

    def parse(self, text):
        """A value written on a command line or in a launch argument (a string), checked."""
        text = str(text).strip()
        if self.kind in ('int', 'float'):
            try:
                value = int(text) if self.kind == 'int' else float(text)
            except ValueError:
                raise ValueError(f'expected {self._expected()}, got {text!r}') from None
            return self.check(value)
        if self.kind == 'bool':
            if text.lower() not in ('true', 'false'):
                raise ValueError(f'expected true or false, got {text!r}')
            return text.lower() == 'true'
        return self.check(text)

    def expected(self):
        """What a value must be: 'an integer from 1 to 64 threads', 'a list of topic names'."""
        return self._expected()

    def _expected(self):
        what = f'a list of {self.items}' if self.kind == 'str[]' else _KINDS[self.kind]
        unit = f' {self.unit}' if self.unit else ''
        if self.low is not None and self.high is not None:
            return f'{what} from {_num(self.low)} to {self._high()}{unit}'
        if self.low is not None:
            return f'{what} >= {_num(self.low)}{unit}'
        if self.above is not None:
            return f'{what} of{unit} > {_num(self.above)}' if unit else \
                f'{what} > {_num(self.above)}'
        return what

    def range_text(self):
        """The allowed values, for descriptions and the README."""
        if self.choices:
            return ', '.join(self.choices)
        if self.low is not None and self.high is not None:
            return f'{_num(self.low)}..{self._high()}' + (f' {self.unit}' if self.unit else '')
        if self.above is not None:
            return f'> {_num(self.above)}' + (f' {self.unit}' if self.unit else '')
        return ''

    def _high(self):
        return self.high_text or _num(self.high)

    def range_sentence(self):
        """'One of a, b.' or 'Range 1..64 threads.' ('' when any value of the type goes)."""
        if not self.range_text():
            return ''
        return ('One of ' if self.choices else 'Range ') + self.range_text() + '.'

    def describe(self, restart_text=None):
        """The ROS parameter description: what it does, its unit and range, and how it
        changes (restart_text for the parameters fixed once configured)."""
        parts = [self.text]
        if self.range_text():
            parts.append(self.range_sentence())
        if self.model:
            parts.append('Default from the model YAML (parameter model).')
        if self.runtime:
            parts.append('Changes at run time.')
        elif restart_text:
            parts.append(restart_text)
        return ' '.join(parts)


def _num(value):
    return f'{value:g}' if isinstance(value, float) else str(value)


P = Param
TABLE = (
    # ---- the node: inputs, outputs, QoS -----------------------------------------------
    P('model', 'str', 'efficientnet_lite0',
      'Model config: a name from the package\'s config/ (e.g. mobilenetv3) or the path of a '
      'model YAML, whose keys give the defaults of the model parameters.'),
    P('image_topics', 'str[]', ['image_raw'],
      'sensor_msgs/Image topics to classify; relative names follow the node\'s namespace '
      'and remaps.'),
    P('compressed_topics', 'str[]', [],
      'sensor_msgs/CompressedImage topics (jpeg, png) to classify.'),
    P('reliability', 'str', 'auto',
      'Input QoS reliability: auto (reliable, re-subscribed best effort when a best-effort '
      'camera appears), reliable, or best_effort (REP-2003 sensor data).',
      choices=RELIABILITIES),
    P('depth', 'int', 1, 'Input QoS history depth per camera (the node only wants the newest '
      'frame).', 1, 1000, 'frames'),
    P('output_topic', 'str', 'classification',
      'vision_msgs/Classification output topic; label_info, vision_info and overlay are '
      'published under it.'),
    P('per_source_output', 'bool', False,
      'Also publish each camera\'s results on <image topic>/classification and its overlay '
      'on <image topic>/classification/overlay.'),
    P('overlay_width', 'int', 640, 'Width of the overlay image (drawn only while '
      'classification/overlay has subscribers); 0 = the source frame\'s width.', 0, 7680,
      'px'),
    P('diagnostics_period', 'float', 1.0, 'Time between /diagnostics messages.', 0.01, 3600.0,
      's'),
    # ---- what is classified, and how often (all at run time) -------------------------
    P('max_rate', 'float', 0.0, 'Classify at most this many frames a second per camera (a '
      'CPU or BPU shared with navigation, SLAM, a detector); the frames in between are not '
      'decoded or inferred, counted throttled in /diagnostics. 0 = every frame.', 0.0,
      1000.0, 'Hz', runtime=True),
    P('classes', 'str[]', [], 'The classes a result may hold, by name (labels_path) or class '
      'id; top-k is taken among them. Empty = all. LabelInfo stays the model\'s whole label '
      'map.', runtime=True, items='class names or ids'),
    P('class_thresholds', 'str[]', [], 'Per-class minimum scores on top of score_threshold, '
      'as "name_or_id:score" (e.g. "espresso:0.6", "967:0.6"): a class scoring below its own '
      'is left out.', runtime=True, items='"name_or_id:score" entries'),
    # ---- the two-stage pipeline: a detector's boxes ----------------------------------
    P('detection_topics', 'str[]', [],
      'vision_msgs/Detection2DArray topics, one per entry of image_topics in the same order: '
      'each camera\'s detected boxes are classified instead of its whole frame (an array '
      'belongs to the image with the same header stamp and frame_id). Empty = whole frames.'),
    P('detections_output_topic', 'str', 'classified_detections',
      'vision_msgs/Detection2DArray output: every input detection in order, its results the '
      'top-k of its box (empty for a skipped box).'),
    P('detection_timeout', 'float', 0.5, 'How long an image waits for its detections (and '
      'detections for their image) before both are dropped (counted), between their '
      'arrivals (an array arrives when the node receives it, before it reads its boxes).',
      0.001, 60.0, 's'),
    P('box_expand', 'float', 1.0, 'Each box\'s width and height are scaled by this around '
      'its centre before cropping (context for the classifier).', 0.1, 10.0, 'ratio'),
    P('box_square', 'bool', False, 'Grow each box\'s short side to its long side before '
      'cropping (no distortion of elongated objects).'),
    P('min_box_size', 'int', 8, 'Boxes whose crop (clipped to the image) is narrower or '
      'shorter than this are skipped (counted).', 1, 8192, 'px'),
    P('max_detections', 'int', 16, 'At most this many boxes per frame are classified, the '
      'largest first; the rest are skipped (counted).', 1, 10000, 'boxes'),
    P('max_image_pixels', 'int', DEFAULT_MAX_IMAGE_PIXELS,
      'Compressed frames whose JPEG/PNG header declares more pixels are refused before '
      'decoding (counted malformed); 0 = no limit.', 0, INT_MAX, 'pixels'),
    # ---- the model (YAML keys) --------------------------------------------------------
    P('model_name', 'str', 'efficientnet_lite0',
      'The model\'s name in logs, /diagnostics and VisionInfo.', model=True),
    P('onnx_path', 'str', 'efficientnet_lite0.onnx',
      'ONNX model file of the onnxruntime backend; a relative path is looked up in the '
      'models directory.', model=True),
    P('bpu_path', 'str', 'efficientnet_lite0_224x224_nv12.bin',
      'Compiled RDK X5 BPU model (NV12 input) of the bpu backend; a relative path is looked '
      'up in the models directory.', model=True),
    P('board_model_dirs', 'str[]', ['/opt/hobot/model/x5/basic'],
      'Where else a relative bpu_path is looked for when the models directory does not have '
      'it, in order: the compiled models an RDK image ships (TROS: /opt/hobot/model/x5/basic).',
      model=True, items='directories'),
    P('labels_path', 'str', 'imagenet1k_labels.txt',
      'Class names, one per line in class order; a relative path is looked up in the models '
      'directory.', model=True),
    P('models_dir', 'str', '',
      'Directory that relative model paths resolve against; empty = the default models '
      'directory ($EDGE_CLASSIFIER_MODELS_DIR, else models/ of a source checkout, else '
      '~/.local/share/edge_classifier/models).', model=True),
    P('input_width', 'int', 224, 'Model input width (even: NV12).', 2, 8192, 'px',
      model=True),
    P('input_height', 'int', 224, 'Model input height (even: NV12).', 2, 8192, 'px',
      model=True),
    P('resize_mode', 'str', 'resize_crop',
      'How a frame becomes the model input: resize_crop (short side to resize_short_side, '
      'centre crop), letterbox (whole frame, black bars) or stretch.', choices=RESIZE_MODES,
      model=True),
    P('resize_short_side', 'int', 256,
      'resize_crop: the frame\'s short side is scaled to this before the centre crop; '
      '0 = crop the largest centred region of the input\'s shape.', 0, 8192, 'px',
      model=True),
    P('mean', 'float[3]', [127.0, 127.0, 127.0],
      'Per-channel mean subtracted on the float (ONNX Runtime) path, in 0-255 pixel units '
      '(the BPU model has it compiled in).', model=True),
    P('std', 'float[3]', [128.0, 128.0, 128.0],
      'Per-channel divisor applied after the mean on the float path, in pixel units, '
      'non-zero (compiled into the BPU model).', model=True),
    P('channel_order', 'str', 'rgb', 'Channel order the ONNX model takes.',
      choices=CHANNEL_ORDERS, model=True),
    P('num_classes', 'int', 1000, 'Scores the model outputs per image (and names in '
      'labels_path).', 1, INT_MAX, 'classes', model=True),
    P('softmax', 'bool', True, 'Apply softmax to the model\'s output (false for a model that '
      'outputs probabilities).', model=True),
    P('top_k', 'int', 5, 'How many classes each Classification carries, best first.', 1,
      INT_MAX, high_text='num_classes', runtime=True, model=True),
    P('score_threshold', 'float', 0.0, 'Classes scoring below this are left out (also '
      'LabelInfo.threshold).', 0.0, 1.0, runtime=True, model=True),
    P('backend', 'str', 'auto', 'Inference backend: auto (the BPU where hobot_dnn imports '
      'and bpu_path exists, else ONNX Runtime), onnxruntime or bpu.', choices=BACKENDS,
      model=True),
    P('workers', 'int', 2, 'Inference worker threads (frames of any camera run on any of '
      'them, in parallel).', 1, 64, 'threads', model=True),
    P('ort_intra_op_threads', 'int', 0, 'ONNX Runtime threads inside one inference; 0 = one '
      'per core (with ort_adaptive_threads: each pinned to its core).', 0, 64, 'threads',
      model=True),
    P('ort_adaptive_threads', 'bool', True,
      'ONNX Runtime: an inference that starts while another runs uses a second, '
      'single-threaded session (no oversubscribed cores under load); one that runs alone '
      'uses whichever session has been faster alone lately (one thread where the CPU is '
      'scarce). With ort_intra_op_threads 0, the multi-threaded session\'s threads and the '
      'worker running it are pinned one per core for that run (false: ONNX Runtime\'s '
      'own placement).', model=True),
    P('ort_spinning', 'str', 'in_run',
      'Whether ONNX Runtime\'s threads spin waiting for work: never, in_run (only inside an '
      'inference: no CPU burnt between frames) or always (its default).',
      choices=ORT_SPINNING, model=True),
    P('ort_graph_optimization', 'str', 'all', 'ONNX Runtime graph optimization level.',
      choices=GRAPH_OPTIMIZATIONS, model=True),
    P('bpu_core_id', 'int', 0, 'BPU core the bpu backend runs on (hobot_dnn core_id; with '
      'hbm_runtime, bpu_cores [core_id - 1]); 0 = any core.', 0, 64, model=True),
    P('bpu_priority', 'int', 0, 'BPU task priority (hobot_dnn forward(priority=...); '
      'hbm_runtime set_scheduling_params(priority=...)).', 0, 255, model=True),
    # ---- where a model comes from (the models tool reads them; the node shows them) ----
    P('source', 'str', '', 'Where the model comes from, for the models tool '
      '(efficientnet_lite0, timm:<architecture>); informational for the node.', model=True),
    P('zoo_onnx_url', 'str', '', 'The RDK model zoo\'s ONNX file (models prepare '
      '--download); informational for the node.', model=True),
    P('zoo_bin_url', 'str', '', 'The RDK model zoo\'s compiled .bin (models prepare '
      '--download); informational for the node.', model=True),
    P('notes', 'str', '', 'Free text about the model.', model=True),
)
del P

BY_NAME = {p.name: p for p in TABLE}
MODEL_KEYS = tuple(p.name for p in TABLE if p.model)
NODE_PARAMS = TABLE
RUNTIME_KEYS = tuple(p.name for p in TABLE if p.runtime)


def broken_topic_rules(image_topics, compressed_topics, detection_topics, output_topic,
                       detections_output_topic='-'):
    """The rules between the node's topic keys, as (key, what is expected, why) for each
    one the values break: the node checks its parameters with them, the launch file its
    arguments before anything starts (it shows the value itself instead of `why`)."""
    broken = []
    if not output_topic.strip():
        broken.append(('output_topic', 'a topic name', ', got an empty string'))
    if not image_topics and not compressed_topics:
        broken.append(('image_topics', 'at least one image or compressed topic',
                       ' (image_topics and compressed_topics are both empty: nothing to '
                       'classify)'))
    if detection_topics and len(detection_topics) != len(image_topics):
        broken.append(('detection_topics',
                       f'one Detection2DArray topic per image topic ({len(image_topics)}: '
                       f'{list(image_topics)})',
                       f': {len(detection_topics)} topic(s) for {len(image_topics)} image '
                       f'topic(s); give one Detection2DArray topic per entry of image_topics, '
                       f'in the same order, or none'))
    if detection_topics and not detections_output_topic.strip():
        broken.append(('detections_output_topic', 'a topic name', ', got an empty string'))
    return broken


def broken_model_rules(cfg):
    """The rules between model keys (each key's own type and range is its row above), as
    (key, message) for each rule that `cfg` (an object with the model keys as attributes)
    breaks. The model YAML, the node's parameters and the tools' overrides all meet them in
    config.from_dict."""
    broken = []
    for key in ('input_width', 'input_height'):
        value = getattr(cfg, key)
        if value % 2:
            broken.append((key, f'must be a positive even number (NV12 needs even sizes), '
                                f'got {value}'))
    if cfg.resize_mode == 'resize_crop' and cfg.resize_short_side and \
            cfg.resize_short_side < max(cfg.input_width, cfg.input_height):
        broken.append(('resize_short_side',
                       f'{cfg.resize_short_side} is smaller than the input size '
                       f'{cfg.input_width}x{cfg.input_height}; use 0 for "crop the centre '
                       f'square"'))
    if any(s == 0 for s in cfg.std):
        broken.append(('std', f'must not contain 0, got {cfg.std}'))
    if cfg.top_k > cfg.num_classes:
        broken.append(('top_k', f'must be between 1 and num_classes ({cfg.num_classes}), got '
                                f'{cfg.top_k}'))
    if not cfg.model_name:
        broken.append(('model_name', 'must not be empty'))
    return broken


def markdown_table():
    """The README's parameter table."""
    rows = ['| parameter | type | default | allowed | at run time | what it does |',
            '|---|---|---|---|---|---|']
    for p in NODE_PARAMS:
        default = 'model YAML' if p.model else _markdown_value(p.default)
        rows.append(f'| `{p.name}` | {p.kind} | {default} | {p.range_text()} | '
                    f'{"yes" if p.runtime else "no"} | {p.text} |')
    return '\n'.join(rows)


def _markdown_value(value):
    if isinstance(value, bool):
        return f'`{str(value).lower()}`'
    if isinstance(value, list):
        return '`[' + ', '.join(map(str, value)) + ']`'
    if isinstance(value, int):
        return f'`{value:,}`' if value >= 10000 else f'`{value}`'
    return f'`{value}`' if value != '' else '`""`'


if __name__ == '__main__':
    print(markdown_table())
    sys.exit(0)
