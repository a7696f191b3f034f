"""Command-line tools: assets (labels, sample photos), models (prepare/list model files),
bench (bare backend vs pipeline), node_bench (the node over DDS) and its baselines (the
floor and naive nodes it measures against), evaluate (top-1/top-5), quantize (int8),
sample_camera, echo, demo, export_torch (runs in the export venv)."""
import ctypes
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
try:   # looked up once here: the child, between fork and exec, only calls it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith('linux') \
        else None
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent():
    """In a child before exec (Linux): SIGTERM when the tool that started it dies, even by
    SIGKILL, so no camera or node outlives a killed benchmark or demo."""
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def spawn(argv, **kwargs):
    """subprocess.Popen for the processes a tool starts (nodes, cameras): they end with it
    (elsewhere than Linux, the tools' own clean-up does it)."""
    if _PRCTL is not None:
        kwargs.setdefault('preexec_fn', _die_with_parent)
    return subprocess.Popen(argv, **kwargs)


def node_command(module, params, node_name=None, log_level='warn'):
    """argv to run `python -m module` as a separate ROS process with -p key:=value."""
    cmd = [sys.executable, '-m', module, '--ros-args', '--log-level', log_level]
    if node_name:
        cmd += ['-r', f'__node:={node_name}']
    for key, value in params.items():
        cmd += ['-p', f'{key}:={value}']
    return cmd
