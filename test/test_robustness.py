"""Robustness of classifier_node as a process over real DDS: a bad-input corpus, a flood of
1080p frames, faults (files, parameters, a failing backend, a camera that goes away),
each bounded in count and time."""
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Classification

from edge_classifier.tools.encode import encode_compressed

from ros_helpers import (Diagnostics, RELIABLE, good_image, node_on_fake_bpu, proc_status_kib,
                         ros_process, stop, wait_for)

# (category, Image fields): each must be dropped, counted and logged, never crash the node
BAD_IMAGES = [
    ('data shorter than step x height', dict(encoding='bgr8', height=240, width=320,
                                             step=960, size=1000)),
    ('data longer than step x height', dict(encoding='bgr8', height=2, width=2, step=6,
                                            size=13)),
    ('step smaller than a row', dict(encoding='bgr8', height=4, width=4, step=11, size=44)),
    ('zero width', dict(encoding='bgr8', height=4, width=0, step=0, size=0)),
    ('zero height', dict(encoding='rgb8', height=0, width=4, step=12, size=0)),
    ('odd nv12', dict(encoding='nv12', height=3, width=5, step=5, size=22)),
    ('odd yuv422', dict(encoding='yuv422_yuy2', height=2, width=3, step=6, size=12)),
    ('unknown encoding', dict(encoding='hsv8', height=2, width=2, step=6, size=12)),
    ('empty encoding', dict(encoding='', height=2, width=2, step=6, size=12)),
    ('16-bit encoding', dict(encoding='mono16', height=4, width=4, step=8, size=32)),
    ('float encoding', dict(encoding='32FC1', height=4, width=4, step=16, size=64)),
    ('huge dimensions, tiny data', dict(encoding='bgr8', height=100000, width=100000,
                                        step=300000, size=12)),
]


def bad_compressed(sample_bgr):
    _, jpeg = encode_compressed(sample_bgr['coffee'], 'jpeg')
    rng = np.random.default_rng(7)
    return [('random bytes', 'jpeg', rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()),
            ('truncated jpeg', 'jpeg', jpeg[:len(jpeg) // 2]),
            ('unknown format', 'tiff', b'II*\x00' + bytes(100)),
            ('empty data', 'png', b'')]


def test_bad_input_corpus_is_dropped_counted_and_good_frames_still_classified(
        ros, sample_bgr):
    proc = ros_process('edge_classifier.node', {
        'image_topics': ['/rb/image'], 'compressed_topics': ['/rb/image/compressed'],
        'output_topic': '/rb/classification', 'diagnostics_period': 0.2})
    diag = Diagnostics(ros, 'edge_classifier')
    results = ros.collect(Classification, '/rb/classification')
    raw_pub = ros.node.create_publisher(Image, '/rb/image', RELIABLE)
    comp_pub = ros.node.create_publisher(CompressedImage, '/rb/image/compressed', RELIABLE)
    tried = 0
    try:
        assert wait_for(lambda: raw_pub.get_subscription_count() > 0 and
                        comp_pub.get_subscription_count() > 0, timeout=20)
        cases = [(name, raw_pub, fields) for name, fields in BAD_IMAGES] + \
                [(name, comp_pub, (fmt, data)) for name, fmt, data in bad_compressed(sample_bgr)]
        for i, (name, pub, fields) in enumerate(cases):
            if pub is raw_pub:
                msg = Image(height=fields['height'], width=fields['width'],
                            encoding=fields['encoding'], step=fields['step'])
                msg.data = bytes(fields['size'])
            else:
                msg = CompressedImage(format=fields[0])
                msg.data = fields[1]
            msg.header.frame_id = f'bad-{i}'
            pub.publish(msg)
            tried += 1
            assert wait_for(lambda: diag.value('malformed') >= tried, timeout=10), \
                f'{name}: not counted as malformed ({diag.latest})'
            good = good_image(sample_bgr, f'good-after-{i}')
            raw_pub.publish(good)
            assert wait_for(lambda: any(m.header.frame_id == f'good-after-{i}'
                                        for m in results), timeout=10), \
                f'no classification after {name}'
        assert proc.poll() is None, 'the node died'
        assert not any(m.header.frame_id.startswith('bad-') for m in results)
        assert diag.value('errors') == 0
    finally:
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err
    assert 'dropped a malformed frame' in err and '/rb/image' in err
    print(f'bad-input corpus: {tried} categories, 1 frame each, 0 crashes')


def test_flood_of_1080p_frames_keeps_memory_and_latency_bounded(ros, default_cfg, tmp_path):
    """1080p frames at several times the model's rate: a slow model (the fake BPU adds 250
    ms per inference: at most 4 fps with one worker) and the camera publishing as fast as it
    can (a slow CPU makes 1080p frames at 14 fps, a fast one at 40 or more)."""
    node = node_on_fake_bpu(default_cfg, tmp_path, '/flood', delay_ms=250)
    diag = Diagnostics(ros, 'edge_classifier')
    cam = ros_process('edge_classifier.tools.sample_camera', {
        'topic': '/flood/image', 'width': 1920, 'height': 1080, 'rate': 500.0})
    try:
        assert wait_for(lambda: diag.value('classified') >= 5, timeout=30), diag.latest
        rss_start = proc_status_kib(node.pid, 'VmRSS')
        received_start = diag.value('received')
        t0 = time.monotonic()
        time.sleep(5.0)
        seconds = time.monotonic() - t0
        rss_end = proc_status_kib(node.pid, 'VmRSS')
        stats = dict(diag.latest)
        assert node.poll() is None
    finally:
        stop(cam)
        code, _, err, _ = stop(node)
    assert code == 0, err
    in_fps = (int(stats['received']) - received_start) / seconds
    inference = float(stats['inference_ms_p50'])
    e2e_p99 = float(stats['end_to_end_ms_p99'])
    out_fps = float(stats['classified_fps'])
    print(f'flood: 1080p bgr8 at {in_fps:.0f} fps into the node ({in_fps / out_fps:.1f}x the '
          f'model), classified {out_fps:.1f} fps, dropped {stats["dropped"]} of '
          f'{stats["received"]}, '
          f'RSS {rss_start / 1024:.0f} -> {rss_end / 1024:.0f} MiB, inference p50 '
          f'{inference:.1f} ms, end-to-end p50 {float(stats["end_to_end_ms_p50"]):.1f} / p99 '
          f'{e2e_p99:.1f} ms')
    assert int(stats['dropped']) > 0, 'a flood must drop stale frames'
    assert in_fps > 2 * out_fps, f'not a flood: {in_fps:.0f} in, {out_fps:.1f} out'
    assert rss_end - rss_start < 100 * 1024, 'memory grew under the flood'
    assert e2e_p99 < 4 * inference + 30, 'frames queued behind the model'


def test_failing_backend_logs_continues_and_reports_error_in_diagnostics(
        ros, default_cfg, tmp_path, sample_bgr):
    proc = node_on_fake_bpu(default_cfg, tmp_path, '/flaky', fail_first=12)
    diag = Diagnostics(ros, 'edge_classifier')
    results = ros.collect(Classification, '/flaky/classification')
    pub = ros.node.create_publisher(Image, '/flaky/image', RELIABLE)
    levels = []
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=20)
        for i in range(11):  # warm-up used 1 failure; 11 frames fail, then it recovers
            pub.publish(good_image(sample_bgr, f'f{i}'))
            assert wait_for(lambda: diag.value('errors') >= i + 1, timeout=10), diag.latest
        assert wait_for(lambda: diag.level is not None and
                        diag.level == DiagnosticStatus.ERROR, timeout=5)
        levels.append(diag.level)
        pub.publish(good_image(sample_bgr, 'recovered'))
        assert wait_for(lambda: any(m.header.frame_id == 'recovered' for m in results), 10)
        assert wait_for(lambda: diag.level == DiagnosticStatus.OK, timeout=5)
        assert proc.poll() is None
    finally:
        code, _, err, _ = stop(proc)
    assert code == 0, err
    assert 'inference failed: RuntimeError: hbDNNInfer failed' in err
    assert levels == [DiagnosticStatus.ERROR]


def test_camera_that_goes_away_and_comes_back(ros):
    node = ros_process('edge_classifier.node', {'image_topics': ['/away/image'],
                                                'output_topic': '/away/classification'})
    results = ros.collect(Classification, '/away/classification')
    try:
        for round_ in range(2):
            before = len(results)
            cam = ros_process('edge_classifier.tools.sample_camera', {
                'topic': '/away/image', 'rate': 10.0, 'width': 320, 'height': 240})
            ok = wait_for(lambda: len(results) >= before + 3, timeout=30)
            assert stop(cam)[0] == 0
            assert ok, f'round {round_}: no results'
        assert node.poll() is None
    finally:
        code, _, err, _ = stop(node)
    assert code == 0, err


@pytest.mark.parametrize('case', ['corrupt model', 'labels count', 'yaml unknown key',
                                  'yaml wrong type', 'params-file unknown key'])
def test_file_faults_fail_at_startup_naming_file_and_fix(tmp_path, default_cfg, case):
    ros_args, params = (), {}
    if case == 'corrupt model':
        bad = tmp_path / 'corrupt.onnx'
        bad.write_bytes(b'\x08\x07not a model' * 50)
        params, words = {'onnx_path': str(bad)}, [str(bad), 'models prepare']
    elif case == 'labels count':
        labels = tmp_path / 'labels.txt'
        labels.write_text('cat\ndog\n')
        params, words = {'labels_path': str(labels)}, [str(labels), 'has 2 names', '1000']
    else:
        yaml_path = tmp_path / 'model.yaml'
        body = {'yaml unknown key': 'colour: rgb', 'yaml wrong type': 'top_k: five',
                'params-file unknown key': 'colour: rgb'}[case]
        yaml_path.write_text(f'/**:\n  ros__parameters:\n    {body}\n')
        if case == 'params-file unknown key':
            ros_args = ('--params-file', str(yaml_path))
            words = ['unknown parameter(s) colour']
        else:
            params = {'model': str(yaml_path)}
            words = [str(yaml_path), 'colour' if 'unknown' in case else "'top_k'"]
    proc = ros_process('edge_classifier.node', params, ros_args=ros_args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    for word in words:
        assert word in err, (case, err)
    assert 'Traceback' not in err
