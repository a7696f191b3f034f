"""classify.launch.py's argument handling (edge_classifier.launch_args), without launch."""
import ast
from pathlib import Path

import pytest

from edge_classifier.errors import EdgeClassifierError
from edge_classifier.launch_args import (ARGUMENTS, ClassifierFailed, LaunchArgumentError,
                                         classifier_failure, colour_output, last_error_line,
                                         parse_topics, plan)

LAUNCH_FILE = Path(__file__).resolve().parent.parent / 'launch' / 'classify.launch.py'


def defaults(**changes):
    values = {name: default for name, default, _ in ARGUMENTS}
    values.update(changes)
    return values


def test_defaults_give_relative_topics_and_the_default_model():
    setup = plan(defaults())
    assert setup.namespace == '' and setup.camera_parameters is None
    assert setup.node_parameters == {
        'model': 'efficientnet_lite0', 'output_topic': 'classification', 'reliability': 'auto',
        'per_source_output': False, 'image_topics': ['image_raw'], 'compressed_topics': [''],
        'overlay_width': 640}
    assert (setup.executable, setup.managed, setup.autostart) == ('classifier_node', False,
                                                                  False)


@pytest.mark.parametrize('managed, autostart, expected', [
    ('true', 'true', ('classifier_lifecycle_node', True, True)),
    ('true', 'false', ('classifier_lifecycle_node', True, False)),
    ('false', 'true', ('classifier_node', False, False))])
def test_managed_mode(managed, autostart, expected):
    setup = plan(defaults(managed=managed, autostart=autostart))
    assert (setup.executable, setup.managed, setup.autostart) == expected


@pytest.mark.parametrize('text, topics', [
    ('[image_raw]', ['image_raw']), ('[front/image_raw, /rear/image_raw]',
                                     ['front/image_raw', '/rear/image_raw']),
    ("['a', \"b\"]", ['a', 'b']), ('a,b', ['a', 'b']), ('/cam', ['/cam']), ('[]', []),
    ('', [])])
def test_parse_topics(text, topics):
    assert parse_topics('image_topics', text) == topics


def test_overrides_and_the_sample_camera():
    setup = plan(defaults(model='mobilenetv3', workers='4', backend='onnxruntime',
                          namespace='robot1', camera='sim', camera_rate='30',
                          image_topics='[front/image_raw, rear/image_raw]'))
    assert setup.namespace == 'robot1'
    assert setup.node_parameters['workers'] == 4
    assert setup.node_parameters['backend'] == 'onnxruntime'
    assert setup.node_parameters['model'] == 'mobilenetv3'
    assert setup.camera_parameters == {'topic': 'front/image_raw', 'rate': 30.0,
                                       'encoding': 'bgr8'}


def test_a_compressed_sample_camera_is_subscribed_as_compressed():
    setup = plan(defaults(camera='sim', camera_encoding='jpeg'))
    assert setup.camera_parameters['topic'] == 'image_raw'
    assert setup.node_parameters['compressed_topics'] == ['image_raw/compressed']


@pytest.mark.parametrize('name, value, words', [
    ('workers', 'two', ["workers:='two'", 'integer from 1 to 64']),
    ('workers', '0', ["workers:='0'"]),
    ('workers', '65', ["workers:='65'"]),
    ('backend', 'tpu', ["backend:='tpu'", 'auto, onnxruntime, bpu']),
    ('reliability', 'sometimes', ["reliability:='sometimes'", 'best_effort']),
    ('camera', 'usb', ["camera:='usb'", 'none, sim']),
    ('per_source_output', 'yes', ["per_source_output:='yes'", 'true or false']),
    ('image_topics', '[a b]', ['image_topics', 'without spaces']),
    ('image_topics', '[a, b', ['image_topics', 'a list of topic names']),
    ('model', ' ', ['model']),
    ('managed', 'maybe', ["managed:='maybe'"]),
    ('overlay_width', '-5', ["overlay_width:='-5'", 'from 0 to 7680']),
    ('overlay_width', '7681', ["overlay_width:='7681'", 'from 0 to 7680']),
])
def test_bad_arguments_name_the_argument(name, value, words):
    with pytest.raises(LaunchArgumentError) as err:
        plan(defaults(**{name: value}))
    for word in words:
        assert word in str(err.value)
    assert isinstance(err.value, EdgeClassifierError)


@pytest.mark.parametrize('name, value', [('camera_rate', 'fast'), ('camera_rate', '-1'),
                                         ('camera_encoding', 'bgr16')])
def test_bad_camera_arguments_name_the_argument(name, value):
    with pytest.raises(LaunchArgumentError, match=f'{name}:='):
        plan(defaults(camera='sim', **{name: value}))


def test_no_topic_at_all_is_refused():
    with pytest.raises(LaunchArgumentError, match='at least one'):
        plan(defaults(image_topics='[]'))


def test_last_error_line_picks_the_reason():
    text = ('[INFO] [edge_classifier]: starting\n'
            '[edge_classifier] cannot start: parameter model: unknown model \'x\'\n\n')
    assert last_error_line(text).startswith('[edge_classifier] cannot start: parameter model')
    assert last_error_line('') == ''


def test_the_launch_file_declares_exactly_the_module_arguments():
    """The launch file has no argument handling of its own (it cannot run in CI)."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert 'resolve_model' not in functions and 'parse_topics' not in functions
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == 'edge_classifier.launch_args' for alias in node.names}
    assert {'ARGUMENTS', 'plan'} <= imported


def test_a_failed_classifier_fails_the_launch_a_clean_exit_does_not():
    """classify.launch.py raises what classifier_failure returns: launch then logs it as its
    last line and `ros2 launch` exits 1 (launch returns 1 when an action raises)."""
    output = ('[INFO] [edge_classifier]: starting\n'
              "[edge_classifier] cannot start: parameter model (the default of "
              "/edge_classifier): unknown model 'nosuchmodel'\n")
    error = classifier_failure('classifier_node', 2, output)
    assert isinstance(error, ClassifierFailed) and isinstance(error, EdgeClassifierError)
    assert str(error) == ("classifier_node exited with code 2: [edge_classifier] cannot "
                          "start: parameter model (the default of /edge_classifier): unknown "
                          "model 'nosuchmodel'")
    assert classifier_failure('classifier_node', 0, output) is None   # Ctrl-C: exit 0
    assert 'code -9' in str(classifier_failure('classifier_lifecycle_node', -9, ''))


class Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        if self.tty is None:
            raise ValueError('I/O operation on closed file')
        return self.tty


def test_colour_only_on_a_terminal(tmp_path):
    assert colour_output(Stream(True)) is True
    assert colour_output(Stream(False)) is False
    assert colour_output(Stream(None)) is False
    with open(tmp_path / 'launch.log', 'w') as log:  # ros2 launch ... > launch.log
        assert colour_output(log) is False
    tree = ast.parse(LAUNCH_FILE.read_text())
    keywords = {kw.arg: kw.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                for kw in node.keywords}
    assert not (isinstance(keywords['emulate_tty'], ast.Constant) and
                keywords['emulate_tty'].value is True), 'emulate_tty must follow the terminal'


@pytest.mark.parametrize('changes, message', [
    ({'image_topics': '[a b]'},
     "image_topics:='[a b]': expected topic names without spaces, separated by commas"),
    ({'compressed_topics': '[a, b'}, 'compressed_topics:=\'[a, b\': expected a list of topic '
     'names such as "[image_raw, /rear/image_raw]"'),
    ({'compressed_topics': '[a b]'}, "compressed_topics:='[a b]': expected topic names "
     'without spaces, separated by commas'),
    ({'model': ' '}, "model:=' ': expected a config name or a YAML path"),
    ({'output_topic': ' '}, "output_topic:=' ': expected a topic name"),
    ({'managed': 'maybe'}, "managed:='maybe': expected true or false"),
    ({'autostart': 'no'}, "autostart:='no': expected true or false"),
    ({'camera': 'usb'}, "camera:='usb': expected one of none, sim"),
    ({'camera': 'sim', 'camera_rate': 'fast'}, "camera_rate:='fast': expected a rate in Hz > 0"),
    ({'camera': 'sim', 'camera_rate': '0'}, "camera_rate:='0': expected a rate in Hz > 0"),
    ({'camera': 'sim', 'camera_encoding': 'bgr16'}, "camera_encoding:='bgr16': expected one "
     "of bgr8, rgb8, bgra8, rgba8, mono8, yuv422_yuy2, uyvy, nv12, jpeg, png"),
    ({'image_topics': '[]'}, "image_topics:='[]': expected at least one image or compressed "
     "topic"),
])
def test_every_refusal_says_argument_value_and_what_is_expected(changes, message):
    """The whole message: it is what a user reads in the launch log."""
    with pytest.raises(LaunchArgumentError) as err:
        plan(defaults(**changes))
    assert str(err.value) == 'launch argument ' + message


def test_missing_arguments_are_all_named():
    values = defaults()
    del values['autostart'], values['camera']
    with pytest.raises(LaunchArgumentError) as err:
        plan(values)
    assert str(err.value) == 'missing launch argument(s): autostart, camera'


def test_a_slow_sample_camera_is_fine():
    assert plan(defaults(camera='sim', camera_rate='0.5')).camera_parameters['rate'] == 0.5


def test_launch_arguments_show_the_parameter_table_with_launch_defaults():
    """`ros2 launch ... -s` shows the table's description, range or choices, and a default
    in launch syntax; model keys default to empty (the model YAML's value)."""
    shown = {name: (default, text) for name, default, text in ARGUMENTS}
    assert shown['image_topics'][0] == '[image_raw]'
    assert shown['compressed_topics'][0] == '[]'
    assert shown['per_source_output'][0] == 'false'
    assert shown['overlay_width'] == (
        '640', "Width of the overlay image (drawn only while classification/overlay has "
        "subscribers); 0 = the source frame's width. Range 0..7680 px.")
    assert shown['workers'] == (
        '', 'Inference worker threads (frames of any camera run on any of them, in parallel). '
        "Range 1..64 threads. Empty: the model YAML's value.")
    assert shown['backend'][1].endswith(
        "One of auto, onnxruntime, bpu. Empty: the model YAML's value.")
    assert shown['output_topic'] == ('classification', 'vision_msgs/Classification output '
                                     'topic; label_info, vision_info and overlay are published '
                                     'under it.')
    assert shown['model'][0] == 'efficientnet_lite0'


@pytest.mark.parametrize('text, line', [
    ('a\nb\n', 'b'),
    ('[edge_classifier] cannot start: x\n[INFO] bye\n', '[edge_classifier] cannot start: x'),
    ('  ERROR: y  \nok\n', 'ERROR: y'),
    ('first error\nsecond Error here\nlast\n', 'second Error here'),
    ('\n\n', ''),
])
def test_last_error_line_is_the_last_error_else_the_last_line(text, line):
    assert last_error_line(text) == line


def test_detections_pair_with_the_image_topics_and_feed_the_sample_detector():
    setup = plan(defaults(image_topics='[front/image_raw, rear/image_raw]',
                          detections='[front/detections, rear/detections]'))
    assert setup.node_parameters['detection_topics'] == ['front/detections',
                                                         'rear/detections']
    assert 'detection_topics' not in plan(defaults()).node_parameters  # off by default
    setup = plan(defaults(camera='sim', detections='detections'))
    assert setup.camera_parameters == {'topic': 'image_raw', 'rate': 5.0, 'encoding': 'bgr8',
                                       'detections_topic': 'detections'}
    assert setup.node_parameters['detection_topics'] == ['detections']


@pytest.mark.parametrize('changes, words', [
    (dict(detections='[a, b]'), ["detections:='[a, b]'", 'one Detection2DArray topic per '
                                 'image topic', "(1: ['image_raw'])"]),
    (dict(detections='[a b]'), ['detections', 'without spaces']),
    (dict(detections='d', camera='sim', camera_encoding='jpeg'),
     ["camera_encoding:='jpeg'", 'a raw encoding with detections:=']),
])
def test_bad_detections_arguments_say_what_is_expected(changes, words):
    with pytest.raises(LaunchArgumentError) as err:
        plan(defaults(**changes))
    for word in words:
        assert word in str(err.value)


def test_web_starts_the_web_view_on_the_classifiers_output():
    assert plan(defaults()).web_parameters is None
    setup = plan(defaults(web='true', web_port='8090', output_topic='results'))
    assert setup.web_parameters == {'host': '127.0.0.1', 'port': 8090, 'topic': 'results'}
    assert plan(defaults(web='true', web_host='0.0.0.0')).web_parameters['host'] == '0.0.0.0'


@pytest.mark.parametrize('changes, words', [
    (dict(web='yes'), ["web:='yes'", 'true or false']),
    (dict(web='true', web_port='80800'), ["web_port:='80800'", 'from 1 to 65535']),
    (dict(web='true', web_port='http'), ["web_port:='http'"]),
    (dict(web='true', web_host=' '), ['web_host', '0.0.0.0']),
])
def test_bad_web_arguments_say_what_is_expected(changes, words):
    with pytest.raises(LaunchArgumentError) as err:
        plan(defaults(**changes))
    for word in words:
        assert word in str(err.value)


def test_the_launch_file_keeps_a_bounded_tail_of_the_classifiers_stderr():
    from edge_classifier.launch_args import OutputTail
    tail = OutputTail(limit=1000)
    for i in range(100000):          # a long run's worth of log lines
        tail.add(f'[INFO] frame {i}\n')
    tail.add('[ERROR] cannot start: model file missing\n')
    assert len(tail.text()) <= 1000
    assert last_error_line(tail.text()) == '[ERROR] cannot start: model file missing'


def test_camera_source_gives_the_sample_camera_a_recording():
    setup = plan(defaults(camera='sim', camera_source='/data/run1_bag'))
    assert setup.camera_parameters['source'] == '/data/run1_bag'
    assert 'source' not in plan(defaults(camera='sim')).camera_parameters
