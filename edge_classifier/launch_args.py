"""The launch arguments of classify.launch.py, checked and turned into node parameters.

Plain Python (no `launch` import), so it is unit-tested anywhere; the launch file only
declares ARGUMENTS and hands their values to plan(). A bad value raises
LaunchArgumentError naming the argument and what it accepts. The model is not resolved
here: the node loads it (config.load_config, the one place), so a bad model name fails in
the node with the list of models, and the launch shuts down with it.
"""
from dataclasses import dataclass
from typing import Dict, Optional

from .config import BACKENDS, RELIABILITIES
from .encode import COMPRESSED, ENCODINGS
from .errors import EdgeClassifierError

CAMERAS = ('none', 'sim')

# (name, default, description): what `ros2 launch edge_classifier classify.launch.py -s` shows
ARGUMENTS = [
    ('model', 'efficientnet_lite0', 'model config name (config/<name>.yaml) or a YAML path'),
    ('image_topics', '[image_raw]', 'sensor_msgs/Image topics, e.g. "[front/image_raw, '
                                    '/rear/image_raw]"; relative names follow the namespace'),
    ('compressed_topics', '[]', 'sensor_msgs/CompressedImage topics (jpeg, png)'),
    ('backend', '', 'override the config: ' + ', '.join(BACKENDS)),
    ('workers', '', 'override the config: number of worker threads, 1..64'),
    ('namespace', '', 'namespace of the nodes and of every relative topic'),
    ('output_topic', 'classification', 'vision_msgs/Classification topic'),
    ('reliability', 'auto', 'input QoS: ' + ', '.join(RELIABILITIES)),
    ('per_source_output', 'false', 'also publish <image topic>/classification per camera'),
    ('managed', 'false', 'true: start classifier_lifecycle_node (a managed node) instead of '
                         'classifier_node'),
    ('autostart', 'true', 'with managed:=true, configure and activate it from the launch file'),
    ('overlay_width', '640', 'width of classification/overlay (drawn only while watched); '
                             '0 = source size'),
    ('camera', 'none', 'sim: also start the sample camera (bundled photos) on the first '
                       'image topic'),
    ('camera_rate', '5.0', 'sample camera rate (Hz)'),
    ('camera_encoding', 'bgr8', 'sample camera encoding: ' + ', '.join(ENCODINGS)),
]


class LaunchArgumentError(EdgeClassifierError):
    """A launch argument with a value the launch file cannot use."""


@dataclass
class LaunchPlan:
    namespace: str
    node_parameters: Dict[str, object]
    camera_parameters: Optional[Dict[str, object]] = None
    executable: str = 'classifier_node'
    managed: bool = False
    autostart: bool = False


def _fail(name, value, expected):
    raise LaunchArgumentError(f'launch argument {name}:={value!r}: expected {expected}')


def parse_topics(name, text):
    """'[a, /b]', 'a,/b' or 'a' -> ['a', '/b'] (quotes around names are dropped)."""
    text = text.strip()
    if text.startswith('[') != text.endswith(']'):
        _fail(name, text, 'a list of topic names such as "[image_raw, /rear/image_raw]"')
    topics = [t.strip().strip('\'"') for t in text.strip('[]').split(',')]
    topics = [t for t in topics if t]
    for topic in topics:
        if any(c.isspace() for c in topic):
            _fail(name, text, 'topic names without spaces, separated by commas')
    return topics


def _boolean(name, text):
    lowered = text.strip().lower()
    if lowered not in ('true', 'false'):
        _fail(name, text, 'true or false')
    return lowered == 'true'


def plan(values):
    """Launch argument values (strings, as LaunchConfiguration gives them) -> LaunchPlan."""
    missing = [name for name, _, _ in ARGUMENTS if name not in values]
    if missing:
        raise LaunchArgumentError(f'missing launch argument(s): {", ".join(missing)}')
    v = {name: str(value) for name, value in values.items()}
    image_topics = parse_topics('image_topics', v['image_topics'])
    compressed = parse_topics('compressed_topics', v['compressed_topics'])
    if v['reliability'] not in RELIABILITIES:
        _fail('reliability', v['reliability'], 'one of ' + ', '.join(RELIABILITIES))
    if not v['output_topic'].strip():
        _fail('output_topic', v['output_topic'], 'a topic name')
    if not v['model'].strip():
        _fail('model', v['model'], 'a config name or a YAML path')
    try:
        overlay_width = int(v['overlay_width'])
    except ValueError:
        overlay_width = -1
    if not 0 <= overlay_width <= 7680:
        _fail('overlay_width', v['overlay_width'], 'a width in pixels, 0..7680 (0 = source size)')
    managed = _boolean('managed', v['managed'])
    autostart = _boolean('autostart', v['autostart'])
    params = {'model': v['model'].strip(), 'output_topic': v['output_topic'].strip(),
              'overlay_width': overlay_width,
              'reliability': v['reliability'],
              'per_source_output': _boolean('per_source_output', v['per_source_output'])}
    if v['backend']:
        if v['backend'] not in BACKENDS:
            _fail('backend', v['backend'], 'one of ' + ', '.join(BACKENDS))
        params['backend'] = v['backend']
    if v['workers']:
        try:
            workers = int(v['workers'])
        except ValueError:
            workers = 0
        if not 1 <= workers <= 64:
            _fail('workers', v['workers'], 'an integer from 1 to 64')
        params['workers'] = workers

    camera = None
    if v['camera'] not in CAMERAS:
        _fail('camera', v['camera'], 'one of ' + ', '.join(CAMERAS))
    if v['camera'] == 'sim':
        try:
            rate = float(v['camera_rate'])
        except ValueError:
            rate = 0.0
        if not rate > 0:
            _fail('camera_rate', v['camera_rate'], 'a rate in Hz > 0')
        if v['camera_encoding'] not in ENCODINGS:
            _fail('camera_encoding', v['camera_encoding'], 'one of ' + ', '.join(ENCODINGS))
        topic = (image_topics or ['image_raw'])[0]
        camera = {'topic': topic, 'rate': rate, 'encoding': v['camera_encoding']}
        if v['camera_encoding'] in COMPRESSED:  # the camera publishes <topic>/compressed
            compressed_topic = topic.rstrip('/') + '/compressed'
            if compressed_topic not in compressed:
                compressed.append(compressed_topic)
    # rclpy cannot type an empty list given on the command line: [''] means "none"
    params['image_topics'] = image_topics or ['']
    params['compressed_topics'] = compressed or ['']
    if not image_topics and not compressed:
        _fail('image_topics', v['image_topics'], 'at least one image or compressed topic')
    return LaunchPlan(v['namespace'].strip(), params, camera,
                      'classifier_lifecycle_node' if managed else 'classifier_node',
                      managed, managed and autostart)


def last_error_line(text):
    """The line of a process's output worth repeating when it failed (its last error)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if 'cannot start' in line or 'error' in line.lower():
            return line
    return lines[-1] if lines else ''
