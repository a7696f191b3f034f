from pathlib import Path

import pytest

from edge_classifier import resources
from edge_classifier.config import (ConfigError, ModelConfig, from_dict,
                                    load_config, load_file)

SEEDS = ['mobilenetv2', 'mobilenetv3', 'mobilenetv3_small', 'mobileone_s0', 'mobileone_s1',
         'mobileone_s2', 'mobileone_s3', 'mobileone_s4', 'efficientnet_b2', 'efficientnet_b3',
         'efficientnet_b4', 'efficientnet_lite0']


def write(tmp_path, text, name='m.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_seed_model_has_a_valid_config():
    assert set(SEEDS) <= set(resources.available_models())
    for name in SEEDS:
        cfg = load_config(name)
        assert cfg.model_name == name
        assert cfg.onnx_path.endswith('.onnx') and cfg.bpu_path.endswith('_nv12.bin')
        assert (cfg.input_width, cfg.input_height) == (224, 224)
        assert cfg.origin.endswith(f'config/{name}.yaml')


def test_float_seed_models_use_the_seeds_preprocessing():
    cfg = load_config('mobilenetv3')
    assert (cfg.resize_mode, cfg.resize_short_side) == ('resize_crop', 256)
    assert cfg.mean == [123.675, 116.28, 103.53] and cfg.std == [58.395, 57.12, 57.375]
    assert cfg.softmax and cfg.channel_order == 'rgb'


def test_default_model_is_lite0_with_its_own_normalization():
    cfg = load_config('efficientnet_lite0')
    assert cfg == ModelConfig(**{**cfg.to_dict()})
    assert cfg.mean == [127.0] * 3 and cfg.std == [128.0] * 3
    assert ModelConfig().model_name == 'efficientnet_lite0'


def test_yaml_path_works_and_relative_paths_resolve_against_models_dir(tmp_path):
    path = write(tmp_path, '/**:\n  ros__parameters:\n    model_name: x\n'
                           f'    models_dir: {tmp_path}\n    onnx_path: sub/x.onnx\n')
    cfg = load_config(str(path))
    assert cfg.resolve(cfg.onnx_path) == tmp_path / 'sub' / 'x.onnx'
    assert cfg.resolve('/abs/y.onnx') == Path('/abs/y.onnx')
    assert cfg.replace(models_dir='/other').resolve(cfg.onnx_path) == Path('/other/sub/x.onnx')


def test_node_name_key_is_accepted(tmp_path):
    path = write(tmp_path, 'edge_classifier:\n  ros__parameters:\n    top_k: 3\n')
    assert load_file(path).top_k == 3


@pytest.mark.parametrize('body, words', [
    ('    colour: rgb\n', ["unknown key(s) 'colour'", 'allowed keys']),
    ('    top_k: five\n', ["key 'top_k'", 'expected an integer', "'five'"]),
    ('    top_k: 0\n', ["key 'top_k'", 'from 1 to num_classes']),
    ('    top_k: 1001\n', ["key 'top_k'", 'between 1 and num_classes (1000)']),
    ('    top_k: true\n', ["key 'top_k'", 'expected an integer']),
    ('    bpu_priority: 256\n', ["key 'bpu_priority'", 'from 0 to 255']),
    ('    bpu_core_id: -1\n', ["key 'bpu_core_id'", 'from 0 to 64']),
    ('    softmax: 1\n', ["key 'softmax'", 'true or false']),
    ('    mean: [1, 2]\n', ["key 'mean'", 'list of 3 numbers']),
    ('    std: [1, 0, 1]\n', ["key 'std'", 'must not contain 0']),
    ('    resize_mode: crop\n', ["key 'resize_mode'", 'resize_crop, letterbox, stretch']),
    ('    backend: gpu\n', ["key 'backend'", 'auto, onnxruntime, bpu']),
    ('    input_width: 223\n', ["key 'input_width'", 'even']),
    ('    score_threshold: 1.5\n', ["key 'score_threshold'", 'from 0 to 1']),
    ('    workers: 0\n', ["key 'workers'", 'from 1 to 64']),
    ('    workers: 65\n', ["key 'workers'", 'from 1 to 64']),
    ('    resize_short_side: 100\n', ["key 'resize_short_side'", 'smaller than the input']),
])
def test_invalid_values_name_file_key_and_allowed_values(tmp_path, body, words):
    path = write(tmp_path, '/**:\n  ros__parameters:\n' + body)
    with pytest.raises(ConfigError) as err:
        load_file(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, '/**:\n  ros__parameters:\n    top_k: [1, 2\n    x: 1\n')
    with pytest.raises(ConfigError, match=r'not valid YAML at line \d+'):
        load_file(path)


@pytest.mark.parametrize('text', ['top_k: 3\n', '/**:\n  top_k: 3\n', '- 1\n', '',
                                  '/**:\n  ros__parameters: 3\n'])
def test_not_a_params_file(tmp_path, text):
    with pytest.raises(ConfigError, match='ros__parameters'):
        load_file(write(tmp_path, text))


def test_unknown_model_lists_available_ones():
    with pytest.raises(ConfigError) as err:
        load_config('resnet9000')
    assert "unknown model 'resnet9000'" in str(err.value)
    assert 'mobilenetv3' in str(err.value) and 'efficientnet_lite0' in str(err.value)


def test_missing_yaml_path_is_named(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path / 'nope.yaml')):
        load_config(str(tmp_path / 'nope.yaml'))


def test_replace_validates():
    cfg = load_config('mobilenetv3')
    assert cfg.replace(backend='onnxruntime').backend == 'onnxruntime'
    with pytest.raises(ConfigError, match='backend'):
        cfg.replace(backend='tpu')


def test_from_dict_accepts_ints_for_floats_and_keys_cover_dataclass():
    cfg = from_dict({'mean': [1, 2, 3], 'score_threshold': 0})
    assert cfg.mean == [1.0, 2.0, 3.0] and isinstance(cfg.score_threshold, float)
    assert "origin" not in cfg.to_dict() and "onnx_path" in cfg.to_dict()


def test_prepare_hints_are_commands_that_fix_this_case(monkeypatch, tmp_path):
    """The command names this interpreter (unless `python3` is it), the config and the models
    directory this process looks in; per source, the step that makes the file."""
    import shutil
    import sys
    monkeypatch.setattr(shutil, 'which', lambda name: '/usr/bin/python3')
    models = tmp_path / 'my models'
    lite0 = load_config('efficientnet_lite0').replace(models_dir=str(models))
    tool = f"{sys.executable} -m edge_classifier.tools.models prepare"
    where = f"--models-dir '{models}'"
    assert lite0.prepare_hint('onnx_path') == f'run `{tool} efficientnet_lite0 {where}`'
    assert lite0.prepare_hint('bpu_path') == ('copy the RDK model zoo\'s compiled model to '
                                              f'{models}/efficientnet_lite0_224x224_nv12.bin')
    v3 = load_config('mobilenetv3').replace(models_dir=str(models))
    assert v3.prepare_hint('onnx_path') == (
        f'run `{tool} mobilenetv3 {where} --untrained` (the architecture with random weights, '
        'for speed work only; installs timm + torch once, ~5.7 GB), or copy a trained ONNX '
        f'model to {models}/mobilenetv3.onnx; on the RDK X5, the zoo\'s compiled .bin '
        f'(MobileNetV3_224x224_nv12.bin: copy it into {models}, or `{tool} mobilenetv3 {where} '
        '--download` where the network reaches the zoo (its compiled .bin); `backend: auto` '
        'then uses the BPU)')
    assert v3.prepare_hint('bpu_path') == (
        f'copy the RDK model zoo\'s compiled model to {models}/MobileNetV3_224x224_nv12.bin, '
        f'or run `{tool} mobilenetv3 {where} --download` where the network reaches the zoo')
    other = v3.replace(source='', zoo_bin_url='')
    assert other.prepare_hint('onnx_path') == f'copy the model to {models}/mobilenetv3.onnx'
    assert other.prepare_hint('bpu_path').endswith('MobileNetV3_224x224_nv12.bin')
    monkeypatch.setattr(shutil, 'which', lambda name: sys.executable)
    assert lite0.prepare_hint('onnx_path').startswith('run `python3 -m edge_classifier')


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('model_name: x\ntop_k: [1,\n  onnx_path: y\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(err.value) == (f"{path}: not valid YAML at line 4, column 1: expected ',' or "
                              "']', but got '<stream end>'")


@pytest.mark.parametrize('changes, error', [
    ({'model_name': ''}, "key 'model_name': must not be empty"),
    ({'resize_short_side': 223}, "key 'resize_short_side': 223 is smaller than the input size "
     "224x224; use 0 for \"crop the centre square\""),
    ({'resize_short_side': 224}, None),   # the bounds are inclusive
    ({'top_k': 1000}, None),
])
def test_bounds_between_keys(changes, error):
    base = load_config('efficientnet_lite0')
    if error is None:
        assert all(getattr(base.replace(**changes), k) == v for k, v in changes.items())
    else:
        with pytest.raises(ConfigError) as err:
            base.replace(**changes)
        assert str(err.value) == f'{base.origin}: {error}'


MODELS = ('efficientnet_b2, efficientnet_b3, efficientnet_b4, efficientnet_lite0, mobilenetv2, '
          'mobilenetv3, mobilenetv3_small, mobileone_s0, mobileone_s1, mobileone_s2, '
          'mobileone_s3, mobileone_s4')


@pytest.mark.parametrize('text', ['nosuch.yaml', 'nosuch.yml', 'dir/nosuch', 'dir\\nosuch'])
def test_what_looks_like_a_path_is_read_as_one(text, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(text)
    assert str(err.value) == (f'model config {text} does not exist; give a path to a YAML '
                              f'file or one of the model names: {MODELS}')


def test_a_name_is_a_shipped_config(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config('resnet9000')
    assert str(err.value) == (f"unknown model 'resnet9000' (no {resources.config_dir()}/"
                              f"resnet9000.yaml); available models: {MODELS}")
    assert load_config('mobilenetv3').model_name == 'mobilenetv3'


def test_reference_finds_the_config_again(tmp_path):
    """By name when it is the shipped file, else by path; for parameters, the model name."""
    shipped = load_config('mobilenetv3')
    assert shipped.reference() == 'mobilenetv3'
    copy = tmp_path / 'mobilenetv3.yml'
    copy.write_text((resources.config_dir() / 'mobilenetv3.yaml').read_text())
    assert load_config(str(copy)).reference() == str(copy)
    assert shipped.replace(origin='parameters').reference() == 'mobilenetv3'


def test_model_config_fields_come_from_the_table_and_lists_are_not_shared():
    import dataclasses
    from edge_classifier.params import BY_NAME, MODEL_KEYS
    fields = [f for f in dataclasses.fields(ModelConfig) if f.name != 'origin']
    assert [f.name for f in fields] == list(MODEL_KEYS)
    default = ModelConfig()
    for f in fields:
        assert getattr(default, f.name) == BY_NAME[f.name].default, f.name
    assert dict((f.name, f.type) for f in fields)['workers'] is int
    a, b = ModelConfig(), ModelConfig()
    a.mean.append(1.0)
    a.board_model_dirs.append('/x')
    assert len(b.mean) == 3 and b.board_model_dirs == ['/opt/hobot/model/x5/basic']
    assert BY_NAME['mean'].default == [127.0, 127.0, 127.0]


def test_the_compiled_model_is_found_where_it_is_and_says_where(tmp_path):
    models, board = tmp_path / 'models', tmp_path / 'board'
    models.mkdir()
    board.mkdir()
    cfg = load_config('mobilenetv2').replace(models_dir=str(models),
                                             board_model_dirs=[str(board)])
    name = cfg.bpu_path
    assert cfg.bpu_model() == (models / name, '')                    # nowhere: where to put it
    (board / name).write_text('x')
    assert cfg.bpu_model() == (board / name, f"the board's models ({board})")
    (models / name).write_text('x')
    assert cfg.bpu_model() == (models / name, 'the models directory')
    absolute = cfg.replace(bpu_path=str(tmp_path / 'elsewhere.bin'))
    assert absolute.bpu_model() == (tmp_path / 'elsewhere.bin', '')
