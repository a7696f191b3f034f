"""One error family: every command line ends a user error with its message and exit code 2,
never a traceback."""
import os
import signal
import subprocess
import sys
import time

import pytest

from edge_classifier.backends import BackendError
from edge_classifier.config import ConfigError
from edge_classifier.errors import (EdgeClassifierError, Terminated, raise_on_stop_signals,
                                    signals_held)
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


NODES = [('edge_classifier.node', 'workers', 'worker'),
         ('edge_classifier.lifecycle_node', 'top_k', 'topk'),
         ('edge_classifier.tools.sample_camera', 'rate', 'rat'),
         ('edge_classifier.web_view', 'port', 'prot')]


@pytest.mark.parametrize('module, param, _', NODES, ids=[n[0] for n in NODES])
def test_help_of_each_node_executable_prints_usage_and_starts_nothing(module, param, _):
    done = subprocess.run([sys.executable, '-m', module, '--help', '--ros-args', '-p',
                           'port:=1'], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('usage: ') and f'  {param} (default ' in done.stdout
    assert done.stderr == ''   # no log line: nothing was built, nothing bound or subscribed


@pytest.mark.parametrize('module, param, typo', NODES, ids=[n[0] for n in NODES])
def test_a_typo_in_a_node_parameter_fails_naming_the_closest(module, param, typo):
    """Plain nodes exit 2 at startup; the managed node stays up, unconfigurable, and says
    why (its manager sees the failed configure)."""
    proc = subprocess.Popen([sys.executable, '-m', module, '--ros-args', '-p', f'{typo}:=3'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    expected = f'unknown parameter(s) {typo} (did you mean {param}?)'
    err = ''
    try:
        if module.endswith('lifecycle_node'):
            for line in proc.stderr:
                err += line
                if 'cannot be configured' in line:
                    break
            proc.send_signal(signal.SIGINT)
            err += proc.communicate(timeout=30)[1]
            assert proc.returncode == 0, err
        else:
            err = proc.communicate(timeout=60)[1]
            assert proc.returncode == 2, err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert expected in err, err
    assert 'Traceback' not in err


@pytest.mark.parametrize('module, args, typo, option', [
    ('edge_classifier.classify', ['x.png', '--topk', '3'], '--topk', '--top-k'),
    ('edge_classifier.tools.echo', ['--tpoic', 'x'], '--tpoic', '--topic'),
    ('edge_classifier.tools.bench', ['--wokers', '1'], '--wokers', '--workers'),
    ('edge_classifier.tools.node_bench', ['--secnds', '1'], '--secnds', '--seconds'),
    ('edge_classifier.tools.bag', ['classify', 'b', '--output', 'o', '--wrokers', '2'],
     '--wrokers', '--workers'),
    ('edge_classifier.tools.evaluate', ['d', '--modle', 'x'], '--modle', '--model'),
    ('edge_classifier.tools.demo', ['--sorce', 'x'], '--sorce', '--source'),
])
def test_a_typo_in_a_command_line_option_fails_naming_the_closest(module, args, typo, option):
    done = subprocess.run([sys.executable, '-m', module, *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f'{typo}: did you mean {option}?' in done.stderr, done.stderr


def _console_scripts():
    from importlib.metadata import distribution
    return sorted(ep.name for ep in distribution('edge_classifier').entry_points
                  if ep.group == 'console_scripts')


@pytest.mark.parametrize('name', _console_scripts())
def test_every_executable_answers_help_and_starts_nothing(name):
    """Console scripts and `ros2 run` targets alike (the same entry points)."""
    exe = os.path.join(os.path.dirname(sys.executable), name)
    done = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().lower().startswith('usage:'), done.stdout[:300]
    assert 'Traceback' not in done.stderr and '[INFO]' not in done.stderr


def test_every_error_kind_is_defined_in_the_errors_module():
    """One home for the error kinds (a new one goes to errors.py, not beside its raiser)."""
    import pathlib
    import re

    import edge_classifier
    root = pathlib.Path(edge_classifier.__file__).parent
    elsewhere = [f'{path.relative_to(root)}: {m.group(0)}'
                 for path in root.rglob('*.py') if path.name != 'errors.py'
                 for m in re.finditer(r'^class \w+\(.*(Error|Failed)\b.*\):', path.read_text(),
                                      re.M)]
    assert not elsewhere, elsewhere


def test_a_stop_signal_while_held_is_raised_when_the_hold_ends():
    """errors.signals_held (tools spinning rclpy): Ctrl-C / SIGTERM inside is raised on
    leaving the outermost hold, not where it landed; outside a hold, at once."""
    previous = raise_on_stop_signals()
    reached = []
    try:
        with pytest.raises(Terminated):
            with signals_held():
                with signals_held():
                    os.kill(os.getpid(), signal.SIGTERM)
                    reached.append('inner')
                reached.append('outer')
        assert reached == ['inner', 'outer']
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        with signals_held():
            pass   # nothing left over from the signals before
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
