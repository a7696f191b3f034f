"""classifier_node as a separate process over real Fast DDS: every encoding, the header,
label info for late subscribers, diagnostics, bad frames, parameters, signals."""
import signal
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Classification, LabelInfo, VisionInfo

from edge_classifier.tools.encode import RAW_ENCODINGS, encode_compressed, encode_raw

from ros_helpers import (EXPECTED, check, ros_process, send_and_wait, set_param, small, stop,
                         wait_for)

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope='module')
def node(ros, default_cfg):
    proc = ros_process('edge_classifier.node', {
        'image_topics': ['/cam/image', '/cam2/image'],
        'compressed_topics': ['/cam/image/compressed'], 'top_k': 5, 'workers': 2,
        'per_source_output': True})
    results = ros.collect(Classification, '/classification')
    yield proc, results
    code, _, err, seconds = stop(proc)
    assert code == 0, err
    assert 'Traceback' not in err


@pytest.mark.parametrize('encoding', RAW_ENCODINGS)
def test_every_raw_encoding_is_classified_with_the_source_header(ros, node, sample_bgr,
                                                                 encoding):
    _, results = node
    pub = ros.node.create_publisher(Image, '/cam/image', 10)
    for i, photo in enumerate(EXPECTED):
        raw = encode_raw(small(sample_bgr[photo]), encoding, row_padding=4 * i)
        msg = Image(height=raw.height, width=raw.width, encoding=raw.encoding, step=raw.step)
        msg.data = raw.data
        stamp = 100 + RAW_ENCODINGS.index(encoding) * 10 + i
        check(send_and_wait(ros, results, pub, msg, f'{encoding}-{photo}', stamp), photo, stamp)
    ros.node.destroy_publisher(pub)


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_compressed_images_are_classified(ros, node, sample_bgr, fmt):
    _, results = node
    pub = ros.node.create_publisher(CompressedImage, '/cam/image/compressed', 10)
    for i, photo in enumerate(EXPECTED):
        msg = CompressedImage()
        msg.format, msg.data = encode_compressed(small(sample_bgr[photo]), fmt)
        check(send_and_wait(ros, results, pub, msg, f'{fmt}-{photo}', 300 + i), photo, 300 + i)
    ros.node.destroy_publisher(pub)


def test_per_source_output_and_second_camera(ros, node, sample_bgr):
    _, results = node
    per_source = ros.collect(Classification, '/cam2/image/classification')
    pub = ros.node.create_publisher(Image, '/cam2/image', 10)
    raw = encode_raw(small(sample_bgr['coffee']), 'bgr8')
    msg = Image(height=raw.height, width=raw.width, encoding='bgr8', step=raw.step)
    msg.data = raw.data
    check(send_and_wait(ros, results, pub, msg, 'cam2-coffee', 400), 'coffee', 400)
    assert wait_for(lambda: any(m.header.frame_id == 'cam2-coffee' for m in per_source), 5)
    assert not any(m.header.frame_id.startswith('bgr8') for m in per_source)


def test_late_subscriber_gets_label_map_and_vision_info(ros, node):
    labels = ros.collect(LabelInfo, '/classification/label_info', LATCHED)
    infos = ros.collect(VisionInfo, '/classification/vision_info', LATCHED)
    assert wait_for(lambda: labels and infos, timeout=10)
    class_map = labels[0].class_map
    assert len(class_map) == 1000
    assert class_map[282].class_id == 282 and class_map[282].class_name == 'tiger cat'
    assert 'efficientnet_lite0' in infos[0].method
    assert infos[0].database_location == '/edge_classifier/class_names'


def test_malformed_frame_is_dropped_counted_and_node_goes_on(ros, node, sample_bgr):
    _, results = node
    diags = ros.collect(DiagnosticArray, '/diagnostics')
    pub = ros.node.create_publisher(Image, '/cam/image', 10)
    bad = Image(height=240, width=320, encoding='bgr8', step=960)
    bad.data = bytes(1000)
    bad.header.frame_id = 'bad-frame'
    assert wait_for(lambda: pub.get_subscription_count() > 0)

    def malformed_counted():
        for arr in diags:
            for status in arr.status:
                values = {kv.key: kv.value for kv in status.values}
                if int(values.get('malformed', 0)) >= 1:
                    return values
        return None

    def publish_until_counted():  # best effort: the first publication may race matching
        if not malformed_counted():
            pub.publish(bad)
        return malformed_counted()

    assert wait_for(publish_until_counted, timeout=15, interval=0.5), \
        'diagnostics never counted the bad frame'
    values = malformed_counted()
    assert values['model'] == 'efficientnet_lite0' and values['backend'] == 'onnxruntime'
    for key in ('input_fps', 'classified_fps', 'dropped', 'inference_ms_p50',
                'end_to_end_ms_p99'):
        assert key in values
    assert not any(m.header.frame_id == 'bad-frame' for m in results)
    raw = encode_raw(small(sample_bgr['coffee']), 'bgr8')
    good = Image(height=raw.height, width=raw.width, encoding='bgr8', step=raw.step)
    good.data = raw.data
    check(send_and_wait(ros, results, pub, good, 'after-bad', 500), 'coffee', 500)


def test_top_k_changes_at_run_time_and_reload_parameters_are_rejected(ros, node, sample_bgr):
    _, results = node
    assert set_param(ros, 'top_k', 2).successful
    pub = ros.node.create_publisher(Image, '/cam/image', 10)
    raw = encode_raw(small(sample_bgr['coffee']), 'bgr8')
    msg = Image(height=raw.height, width=raw.width, encoding='bgr8', step=raw.step)
    msg.data = raw.data
    assert len(send_and_wait(ros, results, pub, msg, 'topk2', 600).results) == 2
    assert set_param(ros, 'score_threshold', 0.5).successful
    thresholded = send_and_wait(ros, results, pub, msg, 'threshold', 601).results
    assert [h.class_id for h in thresholded] == ['967']  # espresso 0.95; the rest < 0.5
    # startup-only parameters are read-only (their descriptions say: restart the node)
    for name, value in (('workers', 4), ('backend', 'bpu'), ('diagnostics_period', 0.5),
                        ('model', 'mobilenetv3')):
        refused = set_param(ros, name, value)
        assert not refused.successful and 'read-only' in refused.reason, name
    assert not set_param(ros, 'top_k', 0).successful
    assert not set_param(ros, 'score_threshold', 1.5).successful
    assert set_param(ros, 'top_k', 5).successful
    assert set_param(ros, 'score_threshold', 0.0).successful


def test_large_frames_from_the_sample_camera_reach_the_default_qos(ros, default_cfg):
    """640x480 bgr8 (900 KiB) at 15 Hz: the camera's Fast DDS profile makes them arrive."""
    node_proc = ros_process('edge_classifier.node', {'image_topics': ['/big/image'],
                                                     'output_topic': '/big/classification'})
    cam = ros_process('edge_classifier.tools.sample_camera', {
        'topic': '/big/image', 'width': 640, 'height': 480, 'rate': 15.0,
        'frame_id_from_file': True})
    got = ros.collect(Classification, '/big/classification')
    try:
        assert wait_for(lambda: len({m.header.frame_id for m in got}) >= 6, timeout=30), \
            f'only {len(got)} results: {sorted({m.header.frame_id for m in got})}'
    finally:
        cam_code = stop(cam)[0]
        code, _, err, _ = stop(node_proc)
    assert cam_code == 0 and code == 0, err


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signals_end_the_node_cleanly_within_a_second(ros, sig):
    proc = ros_process('edge_classifier.node', {'image_topics': ['/sig/image'],
                                                'output_topic': '/sig/classification'})
    pub = ros.node.create_publisher(Image, '/sig/image', 10)
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=20)
    finally:
        ros.node.destroy_publisher(pub)
    code, _, err, seconds = stop(proc, sig)
    assert code == 0, err
    assert 'Traceback' not in err
    assert seconds < 1.5, f'{sig.name}: took {seconds:.2f} s'


@pytest.mark.parametrize('params, words', [
    ({'model': 'resnet9000'}, ["unknown model 'resnet9000'", 'mobilenetv3']),
    ({'onnx_path': '/nonexistent/m.onnx'}, ['/nonexistent/m.onnx', 'onnx_path']),
    ({'resize_mode': 'zoom'}, ['parameter resize_mode', 'resize_crop, letterbox, stretch']),
    ({'reliability': 'sometimes'}, ['parameter reliability']),
    ({'image_topics': [''], 'compressed_topics': ['']}, ['nothing to classify']),
])
def test_bad_startup_parameters_fail_fast_with_the_reason(params, words):
    proc = ros_process('edge_classifier.node', params)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    for word in words:
        assert word in err
    assert 'Traceback' not in err


def test_incompatible_camera_qos_is_logged_clearly(ros):
    proc = ros_process('edge_classifier.node', {'image_topics': ['/qos/image'],
                                                'output_topic': '/qos/classification',
                                                'reliability': 'reliable'})
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    pub = ros.node.create_publisher(Image, '/qos/image', best_effort)
    try:
        assert wait_for(lambda: ros.node.count_subscribers('/qos/image') > 0, timeout=20)
        time.sleep(1.0)  # let discovery find the mismatch
    finally:
        ros.node.destroy_publisher(pub)
        code, _, err, _ = stop(proc)
    assert code == 0, err
    assert '/qos/image: a publisher has incompatible QoS' in err
    assert 'set the reliability parameter' in err


@pytest.mark.parametrize('camera_reliability', ['reliable', 'best_effort'])
def test_auto_reliability_matches_the_camera(ros, sample_bgr, camera_reliability):
    topic = f'/auto_{camera_reliability}/image'
    proc = ros_process('edge_classifier.node', {'image_topics': [topic],
                                                'output_topic': topic + '/out'})
    results = ros.collect(Classification, topic + '/out')
    policy = (ReliabilityPolicy.RELIABLE if camera_reliability == 'reliable'
              else ReliabilityPolicy.BEST_EFFORT)
    pub = ros.node.create_publisher(Image, topic, QoSProfile(depth=1, reliability=policy))
    raw = encode_raw(small(sample_bgr['coffee']), 'bgr8')
    msg = Image(height=raw.height, width=raw.width, encoding='bgr8', step=raw.step)
    msg.data = raw.data
    try:
        check(send_and_wait(ros, results, pub, msg, 'auto', 700), 'coffee', 700)
        infos = ros.node.get_subscriptions_info_by_topic(topic)
        assert [i.qos_profile.reliability for i in infos] == [policy]
    finally:
        ros.node.destroy_publisher(pub)
        code, _, err, _ = stop(proc)
    assert code == 0, err
    assert f'subscribed to {topic} (Image, reliable, auto)' in err
    downgraded = 're-subscribing best effort' in err
    assert downgraded == (camera_reliability == 'best_effort'), err


def test_startup_errors_name_the_yaml_file_or_the_parameter(tmp_path, default_cfg):
    """A bad value from a model YAML names the file; one set with -p names the node."""
    from helpers import write_params_file
    yaml_path = write_params_file(default_cfg.replace(top_k=7), tmp_path / 'my_model.yaml')
    yaml_path.write_text(yaml_path.read_text().replace('top_k: 7', 'top_k: 0'))
    for params, words in (({'model': str(yaml_path)}, [str(yaml_path), "'top_k'"]),
                          ({'top_k': 5000}, ['parameter top_k', 'set on /edge_classifier']),
                          ({'workers': 'two'}, ['parameter workers', "'two'",
                                                'set on /edge_classifier with -p'])):
        proc = ros_process('edge_classifier.node', params)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert 'Traceback' not in err and 'parameters of /edge_classifier' not in err
        for word in words:
            assert word in err, (params, err)
