"""The model preparation tool: offline behaviour and the untrained-model warning."""
import subprocess
import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

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
    assert proc.returncode == 1
    assert 'no ImageNet weights install offline' in proc.stderr and '--untrained' in proc.stderr
    assert not list(tmp_path.iterdir())
    proc = run('prepare', 'resnet9000')
    assert proc.returncode == 1 and "unknown model 'resnet9000'" in proc.stderr


def test_node_warns_loudly_about_an_untrained_model(tmp_path):
    # the tiny model's ONNX carries edge_classifier.weights=untrained
    path = write_params_file(tiny_config(tmp_path), tmp_path / 'tiny.yaml')
    ros = Harness('untrained_test')
    levels = []

    def on_diag(msg):
        levels.extend(s.level for s in msg.status if s.name.startswith('edge_classifier:'))

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
