"""The model preparation tool: offline behaviour and the untrained-model warning."""
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from edge_classifier import resources
from edge_classifier.wiring.diagnostics import node_of

from helpers import tiny_config, write_params_file
from ros_helpers import Harness, ros_process, stop, wait_for


def run(*args):
    return subprocess.run([sys.executable, '-m', 'edge_classifier.tools.models', *args],
                          capture_output=True, text=True, timeout=120)


def test_list_shows_every_model_and_the_default_has_imagenet_weights():
    proc = run('list')
    assert proc.returncode == 0, proc.stderr
    rows = {line.split('|')[1].strip(): line for line in proc.stdout.splitlines()[2:]}
    assert 'mobileone_s4' in rows and 'efficientnet_b3' in rows
    assert '| imagenet |' in rows['efficientnet_lite0']


def test_prepare_existing_default_is_a_no_op_and_seeds_need_an_explicit_choice(tmp_path):
    proc = run('prepare', 'efficientnet_lite0')
    assert proc.returncode == 0 and 'efficientnet_lite0.onnx' in proc.stdout
    proc = run('prepare', 'mobilenetv3', '--models-dir', str(tmp_path))
    assert proc.returncode == 2
    assert 'no ImageNet weights install offline' in proc.stderr and '--untrained' in proc.stderr
    assert not list(tmp_path.iterdir())
    proc = run('prepare', 'resnet9000')
    assert proc.returncode == 2 and "unknown model 'resnet9000'" in proc.stderr


def test_node_warns_loudly_about_an_untrained_model(tmp_path):
    # the tiny model's ONNX carries edge_classifier.weights=untrained
    path = write_params_file(tiny_config(tmp_path), tmp_path / 'tiny.yaml')
    ros = Harness('untrained_test')
    levels = []

    def on_diag(msg):
        levels.extend(s.level for s in msg.status if node_of(s.name) == 'edge_classifier')

    ros.node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    proc = ros_process('edge_classifier.node', {'model': str(path),
                                                'image_topics': ['/untrained/image']})
    try:
        assert wait_for(lambda: levels, timeout=20)
    finally:
        code, _, err, _ = stop(proc)
        ros.close()
    assert code == 0, err
    assert 'UNTRAINED (RANDOM) WEIGHTS' in err and 'speed measurements only' in err
    assert levels[0] == DiagnosticStatus.WARN


def _hint(err):
    """The command between backticks in the node's 'Fix:' text."""
    match = re.search(r'Fix: run `([^`]+)`', err)
    assert match, err
    return shlex.split(match.group(1))


@pytest.mark.parametrize('model, extra', [('mobilenetv3', ['--dry-run']),
                                          ('efficientnet_lite0', [])])
def test_the_fix_the_node_prints_for_a_missing_model_works(tmp_path, model, extra):
    """The node's hint, run as printed (mobilenetv3's only as a dry run: it installs timm and
    torch, ~5.7 GB; the default model's for real, into an empty models directory)."""
    models = tmp_path / 'models'
    models.mkdir()
    shutil.copy(resources.models_dir() / 'imagenet1k_labels.txt', models)
    proc = ros_process('edge_classifier.node', {'model': model, 'models_dir': str(models),
                                                'backend': 'onnxruntime'})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and 'Traceback' not in err, err
    command = _hint(err)
    assert command[:3] == [sys.executable if shutil.which('python3') != sys.executable
                           else 'python3', '-m', 'edge_classifier.tools.models']
    fix = subprocess.run(command + extra, capture_output=True, text=True, timeout=600)
    assert fix.returncode == 0, fix.stdout + fix.stderr
    if not extra:
        assert (models / 'efficientnet_lite0.onnx').is_file()
        harness = Harness('hint_check')
        proc = ros_process('edge_classifier.node', {'model': model, 'models_dir': str(models),
                                                    'image_topics': ['/hint/image']})
        try:
            assert wait_for(lambda: harness.node.get_subscriptions_info_by_topic('/hint/image')
                            or proc.poll() is not None, timeout=60)
        finally:
            code, _, err, _ = stop(proc)
            harness.close()
        assert code == 0 and 'subscribed to /hint/image' in err, err


def test_the_fix_works_where_it_is_printed_for_an_installed_package(tmp_path):
    """A colcon workspace built without --symlink-install runs an installed copy, whose data
    root is ~/.local/share/edge_classifier (here EDGE_CLASSIFIER_DATA stands for it). Its
    hint, run as a user would from anywhere (here: the source checkout's environment,
    whose own data root is the checkout), must write where the node looks."""
    data = tmp_path / 'installed_data'
    (data / 'models').mkdir(parents=True)
    shutil.copy(resources.models_dir() / 'imagenet1k_labels.txt', data / 'models')
    proc = ros_process('edge_classifier.node', {'backend': 'onnxruntime'},
                       env={'EDGE_CLASSIFIER_DATA': str(data)})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and 'Traceback' not in err, err
    command = _hint(err)
    assert '--models-dir' in command and str(data / 'models') in command, command
    env = {k: v for k, v in os.environ.items() if not k.startswith('EDGE_CLASSIFIER_')}
    fix = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env,
                         cwd=resources.source_root())
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert (data / 'models' / 'efficientnet_lite0.onnx').is_file()
