"""`make demo`, `make demo-two-stage` and `make demo-web` (tools/demo.py): processes over
real DDS, each photo's result printed once (or served by the web view); the exit codes of
the camera and the node are 0."""
import subprocess
import sys

import pytest


def run_demo(*args):
    return subprocess.run([sys.executable, '-m', 'edge_classifier.tools.demo', '--rate', '4',
                           *args], capture_output=True, text=True, timeout=180)


def test_demo_prints_the_top5_of_every_photo():
    proc = run_demo()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith('coffee ') and 'top-5: espresso' in line for line in lines)
    assert 'covering 6/6 photos; camera exit 0, node exit 0' in lines[-1]


def test_demo_plays_a_recording(tmp_path):
    """`make demo DEMO_ARGS="--source BAG"`: the sample camera replays a rosbag2 bag."""
    from edge_classifier.tools.bag import write_sample_bag
    write_sample_bag(tmp_path / 'bag', 'mcap', 'jpeg', frames=12)
    proc = run_demo('--source', str(tmp_path / 'bag'))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert f'{tmp_path / "bag"}: 6 frame ids, as recorded' in lines[0]
    assert any(line.startswith('coffee ') and 'top-5: espresso' in line for line in lines)
    assert 'covering 6/6 photos; camera exit 0, node exit 0' in lines[-1]


def test_two_stage_demo_prints_the_top1_of_every_mosaic_tile():
    proc = run_demo('--two-stage')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tiles = {line.split()[1]: line for line in proc.stdout.splitlines()
             if line.startswith('tile ')}
    assert set(tiles) == {'astronaut', 'camera', 'chelsea', 'coffee', 'motorcycle', 'rocket'}
    assert 'box 320x240' in tiles['coffee'] and tiles['coffee'].split(': ')[1].startswith(
        'espresso')
    assert tiles['chelsea'].split(': ')[1].split()[-2] == 'cat'   # tiger / Egyptian cat
    assert 'covering 6/6 photos; camera exit 0, node exit 0' in proc.stdout.splitlines()[-1]


def test_echo_formats_a_detection_array_with_names_and_skipped_boxes():
    from vision_msgs.msg import (Detection2D, Detection2DArray, ObjectHypothesis,
                                 ObjectHypothesisWithPose)

    from edge_classifier.tools.echo import format_detections
    msg = Detection2DArray()
    msg.header.frame_id, msg.header.stamp.sec = 'cam', 3
    msg.detections = [
        Detection2D(id='shelf-1', results=[ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id='967', score=0.9))]),
        Detection2D()]
    assert format_detections(msg, {967: 'espresso'}) == \
        'cam              stamp=3.000  shelf-1: espresso 0.900 | 1: (skipped)'


@pytest.mark.parametrize('mode', ['', '--two-stage'], ids=['whole-frame', 'two-stage'])
def test_web_demo_prints_the_url_and_serves_the_page_until_stopped(mode):
    import json
    import signal
    import socket

    from ros_helpers import LOCAL_HTTP, stop, wait_for
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, '-m', 'edge_classifier.tools.demo', '--web',
                             *mode.split(), '--port', str(port), '--timeout', '0', '--rate', '4'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = {}

    def classified():
        try:
            with LOCAL_HTTP.open(f'http://127.0.0.1:{port}/state', timeout=2) as r:
                state.update(json.loads(r.read()))
        except OSError:
            return False
        result = state.get('result') or {}
        # whole frames: a top-5; two-stage: the four tiles of a mosaic, each with its top-1
        return len(result.get('boxes', [])) == 4 if mode else len(result.get('results', [])) == 5

    try:
        assert wait_for(classified, timeout=60), state
    finally:
        code, out, err, _ = stop(proc, sig=signal.SIGINT, timeout=20)
    assert f'open http://127.0.0.1:{port}/ in a browser' in out
    assert code == 0, out + err
    assert 'node exit 0, camera exit 0, web_view exit 0' in out, out + err


def test_echo_shows_names_even_for_results_that_came_before_the_label_map():
    """A late LabelInfo: the result that arrived first waits for it (up to 2 s) and is
    printed with its class name, not the bare id."""
    import time

    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Classification, LabelInfo, ObjectHypothesis, VisionClass

    from ros_helpers import Harness, wait_for
    ros = Harness('echo_late_labels')
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = ros.node.create_publisher(Classification, '/late/classification', 10)
    labels = ros.node.create_publisher(LabelInfo, '/late/classification/label_info', latched)
    proc = subprocess.Popen([sys.executable, '-m', 'edge_classifier.tools.echo', '--topic',
                             '/late/classification', '--count', '1', '--timeout', '30'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: results.get_subscription_count() > 0, 20)
        msg = Classification()
        msg.header.frame_id = 'cam'
        msg.results = [ObjectHypothesis(class_id='967', score=0.9)]
        results.publish(msg)
        time.sleep(0.5)
        info = LabelInfo()
        info.class_map = [VisionClass(class_id=i, class_name=f'class{i}') for i in range(1000)]
        info.class_map[967].class_name = 'espresso'
        labels.publish(info)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        ros.close()
    assert proc.returncode == 0, err
    assert 'espresso 0.900' in out and ' 967 ' not in out, out
