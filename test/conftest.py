"""Shared fixtures. Every run keeps DDS on the loopback and in a domain of its own."""
import os
import random

# Before anything imports rclpy: DDS traffic stays on this machine, and a random domain
# keeps parallel runs (make test, colcon test, CI) from hearing each other.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import pytest  # noqa: E402

from edge_classifier import resources  # noqa: E402
from edge_classifier.config import load_config  # noqa: E402

TEST_DIR = Path(__file__).resolve().parent
# What the default model (EfficientNet-Lite0, real ImageNet weights) must say about the
# sample photos; ImageNet ids: 281-285 are the domestic cats.
CAT_CLASSES = {'281', '282', '283', '284', '285'}
EXPECTED_TOP1 = {'chelsea': CAT_CLASSES, 'coffee': {'967'}, 'camera': {'872'},
                 'rocket': {'657', '744'}}


def pytest_report_header(config):
    return (f'ROS_DOMAIN_ID={os.environ["ROS_DOMAIN_ID"]} '
            f'ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]}')


@pytest.fixture(scope='session')
def default_cfg():
    cfg = load_config('efficientnet_lite0')
    path = cfg.resolve(cfg.onnx_path)
    if not path.is_file():
        pytest.fail(f'{path} missing: run make setup (it prepares the default model)')
    return cfg


@pytest.fixture(scope='session')
def samples():
    paths = resources.sample_images()
    if len(paths) < 6:
        pytest.fail(f'sample photos missing in {resources.samples_dir()}: run make setup')
    return {p.stem: p for p in paths}


@pytest.fixture(scope='session')
def sample_bgr(samples):
    return {name: cv2.imread(str(p), cv2.IMREAD_COLOR) for name, p in samples.items()}


@pytest.fixture(scope='session')
def classifier(default_cfg):
    from edge_classifier.pipeline import Classifier
    clf = Classifier(default_cfg.replace(backend='onnxruntime'))
    yield clf
    clf.close()


@pytest.fixture(scope='module')
def ros(request):
    """The test process's own ROS node over real DDS (one per test module)."""
    from ros_helpers import Harness
    harness = Harness(request.module.__name__.rsplit('.', 1)[-1])
    yield harness
    harness.close()
