"""The one parameter table (params.py): the README's table, the model config, the launch
arguments and the node's descriptors all come from it."""
import dataclasses
import re
from pathlib import Path

import pytest

from edge_classifier import params
from edge_classifier.config import ModelConfig
from edge_classifier.launch_args import ARGUMENTS, NODE_ARGUMENTS

README = Path(__file__).resolve().parents[1] / 'README.md'


def test_the_readme_table_is_the_code_table():
    text = README.read_text()
    match = re.search(r'<!-- parameters:begin -->\n(.*?)\n<!-- parameters:end -->', text, re.S)
    assert match, 'README.md lost its parameter table markers'
    assert match.group(1) == params.markdown_table(), (
        'README.md parameter table differs from edge_classifier/params.py; paste the output '
        'of `python -m edge_classifier.params` between the markers')


def test_model_config_fields_are_the_model_keys_with_the_table_defaults():
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {'origin'}
    assert fields == set(params.MODEL_KEYS)
    default = ModelConfig()
    for key in params.MODEL_KEYS:
        assert getattr(default, key) == params.BY_NAME[key].default, key


def test_every_parameter_says_what_it_does_and_its_range():
    for p in params.TABLE:
        assert p.text.endswith('.') and len(p.text) > 25, p.name
        assert 'model config key' not in p.text
        if p.kind in ('int', 'float'):
            assert p.low is not None and p.high is not None, p.name
            assert p.range_sentence().startswith('Range '), p.name
    assert params.BY_NAME['workers'].describe('RESTART').endswith(
        'Range 1..64 threads. Default from the model YAML (parameter model). RESTART')
    assert params.BY_NAME['top_k'].range_text() == '1..num_classes'
    assert 'Changes at run time.' in params.BY_NAME['top_k'].describe('RESTART')


def test_every_model_yaml_key_is_a_node_parameter():
    """A model YAML is a params file for the node: a key the node did not declare would be
    refused as a typo (the provenance keys included: they describe the loaded model)."""
    names = {p.name for p in params.NODE_PARAMS}
    assert set(params.MODEL_KEYS) <= names
    assert {'source', 'zoo_onnx_url', 'zoo_bin_url', 'notes'} <= names
    assert {'workers', 'top_k', 'model', 'image_topics'} <= names


def test_launch_arguments_that_set_parameters_use_the_table():
    by_name = {name: (default, text) for name, default, text in ARGUMENTS}
    for name in NODE_ARGUMENTS:
        param = params.BY_NAME[name]
        default, text = by_name[name]
        assert text.startswith(param.text), name
        assert default == ('' if param.model else default)


@pytest.mark.parametrize('name, value, ok', [
    ('workers', 1, True), ('workers', 64, True), ('workers', 0, False), ('workers', 65, False),
    ('workers', True, False), ('workers', 2.0, False), ('bpu_priority', 255, True),
    ('bpu_priority', 256, False), ('bpu_priority', -1, False), ('bpu_core_id', 65, False),
    ('score_threshold', 1, True), ('score_threshold', 1.0000001, False),
    ('score_threshold', -0.1, False), ('overlay_width', 7680, True),
    ('overlay_width', 7681, False), ('max_image_pixels', 0, True),
    ('max_image_pixels', params.INT_MAX, True), ('depth', 0, False),
    ('diagnostics_period', 0.01, True), ('diagnostics_period', 0.009, False),
    ('backend', 'bpu', True), ('backend', 'tpu', False), ('softmax', 1, False),
    ('mean', [1, 2, 3], True), ('mean', [1, 2], False), ('mean', [1, 2, True], False),
    ('image_topics', 'cam', True), ('image_topics', [1], False), ('model_name', 3, False),
])
def test_checks_at_and_just_past_the_bounds(name, value, ok):
    param = params.BY_NAME[name]
    if ok:
        param.check(value)
    else:
        with pytest.raises(ValueError):
            param.check(value)


@pytest.mark.parametrize('name, text, value', [
    ('workers', '4', 4), ('diagnostics_period', '2', 2.0), ('per_source_output', 'True', True),
    ('backend', ' onnxruntime ', 'onnxruntime')])
def test_parse_command_line_text(name, text, value):
    assert params.BY_NAME[name].parse(text) == value


def test_parse_errors_say_what_is_expected():
    with pytest.raises(ValueError, match=r"expected an integer from 1 to 64 threads, got 'two'"):
        params.BY_NAME['workers'].parse('two')
    with pytest.raises(ValueError, match='expected true or false'):
        params.BY_NAME['per_source_output'].parse('yes')


def test_list_and_string_parameters_check_their_values():
    topics = params.BY_NAME['image_topics']
    assert topics.check(None) == []                     # `-p image_topics:=[]` arrives unset
    assert topics.check('cam') == ['cam']
    assert topics.check(['a', '', 'b']) == ['a', 'b']
    with pytest.raises(ValueError) as err:
        topics.check([1, 2])
    assert str(err.value) == 'expected a list of topic names, got [1, 2]'
    name = params.BY_NAME['output_topic']
    assert name.check(None) == ''
    with pytest.raises(ValueError) as err:
        name.check(5)
    assert str(err.value) == 'expected a string, got 5'


def test_ranges_read_the_same_everywhere():
    workers = params.BY_NAME['workers']
    assert workers.range_sentence() == 'Range 1..64 threads.'
    assert params.BY_NAME['backend'].range_sentence() == 'One of auto, onnxruntime, bpu.'
    assert params.BY_NAME['output_topic'].range_sentence() == ''
    assert params.BY_NAME['top_k'].describe().endswith('Changes at run time.')
    lower_only = dataclasses.replace(workers, high=None)
    assert lower_only.range_text() == ''
    with pytest.raises(ValueError) as err:
        lower_only.parse('0')
    assert str(err.value) == 'expected an integer >= 1 threads, got 0'
    with pytest.raises(ValueError) as err:
        dataclasses.replace(workers, unit='').parse('x')
    assert str(err.value) == "expected an integer from 1 to 64, got 'x'"


@pytest.mark.parametrize('value, text', [
    (True, '`true`'), (['a', 'b'], '`[a, b]`'), (9999, '`9999`'), (10000, '`10,000`'),
    ('', '`""`'), ('x', '`x`'), (0.5, '`0.5`')])
def test_readme_values(value, text):
    assert params._markdown_value(value) == text


def test_a_float_parameter_parses_a_fraction():
    assert params.BY_NAME['score_threshold'].parse(' 0.25 ') == 0.25


def test_a_row_above_a_bound_and_a_list_of_named_items():
    rate = params.Param('rate', 'float', 2.0, 'Frames per second.', above=0, unit='Hz')
    assert rate.check(0.001) == 0.001 and rate.check(30) == 30.0
    for bad in (0, 0.0, -1):
        with pytest.raises(ValueError) as err:
            rate.check(bad)
        assert str(err.value) == f'expected a number of Hz > 0, got {bad!r}'
    assert rate.range_text() == '> 0 Hz' and rate.range_sentence() == 'Range > 0 Hz.'
    plain = params.Param('x', 'int', 1, 'A count.', above=0)
    assert plain.expected() == 'an integer > 0' and plain.range_text() == '> 0'
    hosts = params.Param('hosts', 'str[]', [], 'Names.', items='host names')
    assert hosts.expected() == 'a list of host names'
    with pytest.raises(ValueError, match=r'^expected a list of host names, got 5$'):
        hosts.check(5)
    assert params.BY_NAME['image_topics'].expected() == 'a list of topic names'


def test_the_rules_between_topic_keys():
    ok = (['image_raw'], [], [], 'classification')
    assert params.broken_topic_rules(*ok) == []
    assert [k for k, _, _ in params.broken_topic_rules([], [], [], ' ')] == \
        ['output_topic', 'image_topics']
    (key, expected, why), = params.broken_topic_rules(['a', 'b'], [], ['d'], 'out')
    assert key == 'detection_topics'
    assert expected == "one Detection2DArray topic per image topic (2: ['a', 'b'])"
    assert why.startswith(': 1 topic(s) for 2 image topic(s);')
    assert params.broken_topic_rules(['a'], [], ['d'], 'out', '') == [
        ('detections_output_topic', 'a topic name', ', got an empty string')]
