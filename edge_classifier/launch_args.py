"""The launch arguments of classify.launch.py, checked and turned into node parameters.

Plain Python (no `launch` import), so it is unit-tested anywhere; the launch file only
declares ARGUMENTS and hands their values to plan(). A bad value raises
LaunchArgumentError naming the argument and what it accepts. The model is not resolved
here: the node loads it (config.load_config, the one place), so a bad model name fails in
the node with the list of models, and the launch shuts down with it.
"""
from dataclasses import dataclass
from typing import Dict, Optional

from .tools.encode import COMPRESSED, ENCODINGS
from .errors import ClassifierFailed, LaunchArgumentError
from .params import BY_NAME, broken_topic_rules

CAMERAS = ('none', 'sim')

# Launch arguments that set the node parameter of the same name: their description and
# their check come from the parameter table (params.py). The model's keys default to ''
# (the model YAML's value).
NODE_ARGUMENTS = ('model', 'image_topics', 'compressed_topics', 'backend', 'workers',
                  'output_topic', 'reliability', 'per_source_output', 'overlay_width')


def _launch_default(param):
    if param.model:
        return ''
    if isinstance(param.default, bool):
        return str(param.default).lower()
    if isinstance(param.default, list):
        return '[' + ', '.join(param.default) + ']'
    return str(param.default)


def _argument(name):
    param = BY_NAME[name]
    text = ' '.join(filter(None, [param.text, param.range_sentence(),
                                  'Empty: the model YAML\'s value.' if param.model else '']))
    return name, _launch_default(param), text


# (name, default, description): what `ros2 launch edge_classifier classify.launch.py -s` shows
ARGUMENTS = [_argument('model')] + [_argument(name) for name in NODE_ARGUMENTS[1:]] + [
    ('detections', '[]', 'vision_msgs/Detection2DArray topics, one per image topic (parameter '
                         'detection_topics): classify each camera\'s detected boxes, published '
                         'on classified_detections; with camera:=sim, the sample camera '
                         'publishes mosaics and their tiles as detections on the first of '
                         'these topics'),
    ('web', 'false', 'true: also start web_view, the live page of what the robot sees'),
    ('web_port', '8080', 'web_view\'s TCP port'),
    ('web_host', '127.0.0.1', 'web_view\'s address: 127.0.0.1 = this machine only; 0.0.0.0 = '
                              'every network the robot is on (anyone there sees the camera)'),
    ('namespace', '', 'namespace of the nodes and of every relative topic'),
    ('managed', 'false', 'true: start classifier_lifecycle_node (a managed node) instead of '
                         'classifier_node'),
    ('autostart', 'true', 'with managed:=true, configure and activate it from the launch file'),
    ('camera', 'none', 'sim: also start the sample camera (bundled photos) on the first '
                       'image topic'),
    ('camera_source', '', 'sample camera source: empty = the bundled photos; a folder of '
                          'images, a video file, or a rosbag2 bag directory (replayed at its '
                          'recorded pace)'),
    ('camera_rate', '5.0', 'sample camera rate (Hz)'),
    ('camera_encoding', 'bgr8', 'sample camera encoding: ' + ', '.join(ENCODINGS)),
]


@dataclass
class LaunchPlan:
    namespace: str
    node_parameters: Dict[str, object]
    camera_parameters: Optional[Dict[str, object]] = None
    executable: str = 'classifier_node'
    managed: bool = False
    autostart: bool = False
    web_parameters: Optional[Dict[str, object]] = None


# the launch argument of a node parameter with another name
LAUNCH_NAME = {'detection_topics': 'detections'}


def _fail(name, value, expected):
    raise LaunchArgumentError(f'launch argument {name}:={value!r}: expected {expected}')


def _node_value(name, text):
    """A launch argument that sets a node parameter, checked by the parameter table."""
    try:
        return BY_NAME[name].parse(text)
    except ValueError as exc:
        raise LaunchArgumentError(f'launch argument {name}:={text!r}: {exc}') from None


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
    detections = parse_topics('detections', v['detections'])
    if not v['model'].strip():
        _fail('model', v['model'], 'a config name or a YAML path')
    for key, expected, _ in broken_topic_rules(image_topics, compressed or ['-'], detections,
                                               v['output_topic']):   # (no cameras: below)
        name = LAUNCH_NAME.get(key, key)
        _fail(name, v[name], expected)
    params = {name: _node_value(name, v[name])
              for name in ('model', 'output_topic', 'overlay_width', 'reliability',
                           'per_source_output')}
    for name in ('backend', 'workers'):  # empty: the model YAML's value
        if v[name].strip():
            params[name] = _node_value(name, v[name])
    managed = _boolean('managed', v['managed'])
    autostart = _boolean('autostart', v['autostart'])
    web = None
    if _boolean('web', v['web']):
        try:
            port = int(v['web_port'])
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            _fail('web_port', v['web_port'], 'a TCP port from 1 to 65535')
        if not v['web_host'].strip() or any(c.isspace() for c in v['web_host'].strip()):
            _fail('web_host', v['web_host'], 'an address such as 127.0.0.1 or 0.0.0.0')
        web = {'host': v['web_host'].strip(), 'port': port,
               'topic': params['output_topic']}

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
        if v['camera_source'].strip():
            camera['source'] = v['camera_source'].strip()
        if detections and v['camera_encoding'] in COMPRESSED:
            _fail('camera_encoding', v['camera_encoding'],
                  'a raw encoding with detections:= (detections pair with image_topics, '
                  'sensor_msgs/Image)')
        if detections:  # the stand-in detector: mosaics, their tiles as detections
            camera['detections_topic'] = detections[0]
        if v['camera_encoding'] in COMPRESSED:  # the camera publishes <topic>/compressed
            compressed_topic = topic.rstrip('/') + '/compressed'
            if compressed_topic not in compressed:
                compressed.append(compressed_topic)
    # rclpy cannot type an empty list given on the command line: [''] means "none"
    params['image_topics'] = image_topics or ['']
    params['compressed_topics'] = compressed or ['']
    if detections:
        params['detection_topics'] = detections
    for key, expected, _ in broken_topic_rules(image_topics, compressed, detections, '-'):
        _fail(key, v[key], expected)     # (the camera's compressed topic counts)
    return LaunchPlan(v['namespace'].strip(), params, camera,
                      'classifier_lifecycle_node' if managed else 'classifier_node',
                      managed, managed and autostart, web)


def classifier_failure(executable, returncode, output):
    """What ends the launch when the classifier exited: None for a clean exit (code 0, as
    after Ctrl-C), else a ClassifierFailed carrying its last error line."""
    if not returncode:
        return None
    return ClassifierFailed(f'{executable} exited with code {returncode}: '
                            f'{last_error_line(output)}')


class OutputTail:
    """The last `limit` characters of a process's output (its last error line is in
    them): what the launch file keeps of the classifier's stderr, bounded however long
    the robot runs."""

    def __init__(self, limit=16384):
        self.limit = limit
        self._text = ''

    def add(self, text):
        self._text = (self._text + text)[-self.limit:]

    def text(self):
        return self._text


def colour_output(stream):
    """emulate_tty for the launched nodes: a pseudo-terminal (so rcutils colours its logs)
    only when launch's own output is a terminal; a log redirected to a file stays plain.
    RCUTILS_COLORIZED_OUTPUT=0/1, in the environment, still wins in the nodes."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a stream
        return False


def last_error_line(text):
    """The line of a process's output worth repeating when it failed (its last error)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if 'cannot start' in line or 'error' in line.lower():
            return line
    return lines[-1] if lines else ''
