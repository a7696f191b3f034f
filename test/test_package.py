"""The package as a ROS 2 install sees it: package.xml, setup.py, colcon build/test."""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


COLCON = Path(sys.executable).with_name('colcon')


def test_package_xml_declares_distro_dependencies_only():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3' and root.findtext('name') == 'edge_classifier'
    assert root.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'vision_msgs', 'diagnostic_msgs',
            'python3-numpy', 'python3-opencv', 'python3-yaml'} <= exec_deps
    test_deps = {e.text for e in root.findall('test_depend')}
    assert test_deps >= {'python3-pytest', 'launch_testing', 'launch_testing_ros'}
    everything = {e.text for e in root.iter() if e.tag.endswith('depend')}
    # pip-only pieces never appear: rosdep could not resolve them on a ROS install
    assert not any(d.startswith(('ros-', 'onnx', 'opencv-python')) for d in everything)


def test_setup_py_requires_nothing_pip_only():
    text = (ROOT / 'setup.py').read_text()
    assert "install_requires=['setuptools']" in text
    assert "extras_require={'test': ['pytest']}" in text  # colcon runs pytest only with it


def _copy_repo(dest):
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    if not COLCON.exists():
        pytest.skip(f'colcon not installed next to {sys.executable}')
    ws = tmp_path_factory.mktemp('ws')
    _copy_repo(ws / 'src' / 'edge_classifier')
    env = dict(os.environ, EDGE_CLASSIFIER_DATA=str(ROOT))
    proc = subprocess.run([str(COLCON), 'build'], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ws, env


def test_colcon_build_installs_executables_configs_and_the_ament_index(workspace):
    ws, _ = workspace
    install = ws / 'install' / 'edge_classifier'
    for exe in ('classifier_node', 'sample_camera', 'classification_echo', 'web_view'):
        assert (install / 'lib' / 'edge_classifier' / exe).is_file(), exe
    # the web view's page is installed with the package (package_data)
    pages = list(install.glob('lib/python3*/site-packages/edge_classifier/web/index.html'))
    assert pages, sorted(str(p) for p in install.rglob('web/*'))
    share = install / 'share' / 'edge_classifier'
    assert (share / 'config' / 'efficientnet_lite0.yaml').is_file()
    assert (share / 'config' / 'mobilenetv3.yaml').is_file()
    assert (share / 'package.xml').is_file()
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' /
            'edge_classifier').is_file()


def _colcon_test(ws, env, *tests):
    subprocess.run([str(COLCON), 'test-result', '--delete-yes'], cwd=ws, env=env,
                   capture_output=True)
    return subprocess.run([str(COLCON), 'test', '--return-code-on-test-failure',
                           '--event-handlers', 'console_direct+', '--pytest-args', *tests],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=600)


def test_colcon_test_runs_the_suite_and_fails_when_a_test_fails(workspace):
    ws, env = workspace
    src = ws / 'src' / 'edge_classifier'
    proc = _colcon_test(ws, env, 'test/test_config.py', 'test/test_postprocess.py')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert ' passed' in proc.stdout
    (src / 'test' / 'test_deliberately_failing.py').write_text(
        'def test_fails():\n    assert 1 + 1 == 3\n')
    try:
        proc = _colcon_test(ws, env, 'test/test_config.py', 'test/test_deliberately_failing.py')
    finally:
        (src / 'test' / 'test_deliberately_failing.py').unlink()
    assert proc.returncode != 0
    assert '1 failed' in proc.stdout
