"""Linters as tests (as ros2/examples do): flake8 over the package, launch files and tests."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_flake8():
    try:
        import flake8  # noqa: F401
    except ImportError:
        pytest.skip('flake8 not installed')
    proc = subprocess.run([sys.executable, '-m', 'flake8', 'edge_classifier', 'launch', 'test',
                           'checks', 'setup.py'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
