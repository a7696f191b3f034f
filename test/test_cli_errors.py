"""One error family: every command line ends a user error with its message and exit code 2,
never a traceback."""
import subprocess
import sys

import pytest

from edge_classifier.backends import BackendError
from edge_classifier.config import ConfigError
from edge_classifier.errors import EdgeClassifierError
from edge_classifier.frames import FrameError
from edge_classifier.launch_args import LaunchArgumentError
from edge_classifier.node import StartupError
from edge_classifier.postprocess import LabelsError
from edge_classifier.tools.evaluate import DatasetError
from edge_classifier.tools.models import PrepareError
from edge_classifier.tools.quantize import QuantizeError
from edge_classifier.tools.sample_camera import CameraError

from helpers import tiny_config, write_params_file


def test_every_error_type_is_one_family():
    for error in (BackendError, ConfigError, FrameError, LabelsError, DatasetError,
                  PrepareError, QuantizeError, StartupError, CameraError, LaunchArgumentError):
        assert issubclass(error, EdgeClassifierError), error


def _missing_labels_yaml(tmp_path):
    cfg = tiny_config(tmp_path, labels_path='missing_labels.txt')
    return str(write_params_file(cfg, tmp_path / 'tiny.yaml'))


@pytest.mark.parametrize('module, args, words', [
    ('edge_classifier.classify', ['x.png', '--model', 'nosuch'], ["unknown model 'nosuch'"]),
    ('edge_classifier.tools.bench', ['--model', '{labels}', '--workers', '1', '--seconds',
                                     '0.1', '--rounds', '1'], ['missing_labels.txt']),
    ('edge_classifier.tools.node_bench', ['--cases', 'nosuch'], ["unknown case(s) ['nosuch']"]),
    ('edge_classifier.tools.models', ['prepare', 'nosuch'], ["unknown model 'nosuch'"]),
    ('edge_classifier.tools.models', ['prepare', 'mobilenetv3'], ['--untrained']),
    ('edge_classifier.tools.evaluate', ['{tmp}/none', '--model', '{labels}'],
     ['missing_labels.txt']),
    ('edge_classifier.tools.quantize', ['{tmp}/none'], ['{tmp}/none']),
])
def test_commands_end_with_the_message_and_exit_2(tmp_path, module, args, words):
    labels = _missing_labels_yaml(tmp_path)
    fill = {'labels': labels, 'tmp': str(tmp_path)}
    args = [a.format(**fill) for a in args]
    proc = subprocess.run([sys.executable, '-m', module, *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    for word in words:
        assert word.format(**fill) in proc.stderr, proc.stderr
    # the model name is not printed twice (`models prepare` said "mobilenetv3: mobilenetv3:")
    assert 'mobilenetv3: mobilenetv3' not in proc.stderr
