"""The overlay image and the managed (lifecycle) node, over real DDS between processes."""
import signal

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Classification, LabelInfo

from edge_classifier.tools.encode import RAW_ENCODINGS, encode_compressed, encode_raw
from edge_classifier.frames import image_to_frame
from edge_classifier.overlay import draw, frame_to_bgr
from edge_classifier.postprocess import Hypothesis
from edge_classifier.wiring.diagnostics import node_of

from ros_helpers import Managed, good_image, ros_process, small, stop, wait_for

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


# ---- overlay, ROS-free -----------------------------------------------------------------
def test_the_overlay_never_draws_into_the_callers_frame(sample_bgr):
    """A bgr8 frame's array is the message's buffer (and the worker's frame): drawing must
    happen on a copy, at the frame's size and scaled."""
    bgr = small(sample_bgr['coffee'])
    raw = encode_raw(bgr, 'bgr8')
    frame = image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)
    before = frame.data.copy()
    for width in (0, frame.width, frame.width // 2, frame.width * 2):
        out = frame_to_bgr(frame, width)
        assert not np.shares_memory(out, frame.data)
        draw(out, 'title', [Hypothesis('967', 'espresso', 0.9)])
        assert np.array_equal(frame.data, before)


@pytest.mark.parametrize('encoding', RAW_ENCODINGS)
def test_every_encoding_becomes_a_bgr_overlay(sample_bgr, encoding):
    bgr = small(sample_bgr['coffee'])
    raw = encode_raw(bgr, encoding, row_padding=6)
    frame = image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)
    out = frame_to_bgr(frame)
    assert out.shape == (raw.height, raw.width, 3) and out.dtype == np.uint8
    if encoding in ('bgr8', 'rgb8', 'bgra8', 'rgba8'):
        assert np.array_equal(out, bgr[:raw.height, :raw.width])
    elif encoding != 'mono8':  # YUV round trips: close, not exact
        assert np.abs(out.astype(int) - bgr[:raw.height, :raw.width]).mean() < 6
    scaled = frame_to_bgr(frame, width=160)
    assert scaled.shape[1] == 160 and abs(scaled.shape[0] - 160 * raw.height / raw.width) <= 1
    drawn = draw(out.copy(), 'model', [Hypothesis('967', 'espresso', 0.95)])
    assert not np.array_equal(drawn[:40, :100], out[:40, :100])  # the text box
    assert np.array_equal(drawn[-20:, -20:], out[-20:, -20:])    # the rest untouched
    assert frame.data.base is not None  # the source view was never written to


# ---- overlay over DDS ------------------------------------------------------------------
def _diag_overlays(diags):
    for arr in reversed(diags):
        for status in arr.status:
            values = {kv.key: kv.value for kv in status.values}
            if node_of(status.name) == 'ov_node' and 'overlays' in values:
                return values
    return None


def test_overlay_only_while_watched_with_the_source_header(ros, sample_bgr):
    node = ros_process('edge_classifier.node', {
        'image_topics': ['/ov/image'], 'compressed_topics': ['/ov/image/compressed'],
        'output_topic': '/ov/classification', 'overlay_width': 0, 'per_source_output': True,
        'resize_mode': 'letterbox', 'workers': 1, 'diagnostics_period': 0.2},
        ros_args=('-r', '__node:=ov_node'))
    results = ros.collect(Classification, '/ov/classification')
    diags = ros.collect(DiagnosticArray, '/diagnostics')
    pub = ros.node.create_publisher(Image, '/ov/image', 10)
    cpub = ros.node.create_publisher(CompressedImage, '/ov/image/compressed', 10)
    bgr = small(sample_bgr['chelsea'])

    def image(encoding, frame_id):
        raw = encode_raw(bgr, encoding)
        msg = Image(height=raw.height, width=raw.width, encoding=raw.encoding, step=raw.step)
        msg.data = raw.data
        msg.header.frame_id = frame_id
        return msg

    def send_until_classified(publisher, msg):
        def done():
            if not any(m.header.frame_id == msg.header.frame_id for m in results):
                publisher.publish(msg)
                return False
            return True
        assert wait_for(done, timeout=20, interval=0.3), msg.header.frame_id

    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=30)
        # nobody watches: classified, nothing drawn
        for i in range(3):
            send_until_classified(pub, image('bgr8', f'unwatched{i}'))
        assert wait_for(lambda: _diag_overlays(diags), timeout=10)
        assert wait_for(lambda: _diag_overlays(diags)['classified'] == '3', timeout=10)
        assert _diag_overlays(diags)['overlays'].startswith('0 drawn')

        overlays = ros.collect(Image, '/ov/classification/overlay')
        per_source = ros.collect(Image, '/ov/image/classification/overlay')
        assert wait_for(lambda: ros.node.count_publishers('/ov/classification/overlay'), 10)
        for encoding in RAW_ENCODINGS:
            msg = image(encoding, f'watched-{encoding}')
            send_until_classified(pub, msg)
            assert wait_for(lambda: any(o.header.frame_id == msg.header.frame_id
                                        for o in overlays), timeout=10), encoding
            got = [o for o in overlays if o.header.frame_id == msg.header.frame_id][0]
            assert got.encoding == 'bgr8' and (got.width, got.height) == (msg.width, msg.height)
            assert got.header.stamp == msg.header.stamp
            pixels = np.frombuffer(bytes(got.data), np.uint8).reshape(got.height, got.width, 3)
            if encoding == 'bgr8':
                source = bgr[:got.height, :got.width]
                assert not np.array_equal(pixels[:40, :120], source[:40, :120])  # the text
                assert np.array_equal(pixels[-30:, -30:], source[-30:, -30:])
        assert wait_for(lambda: any(o.header.frame_id == 'watched-bgr8' for o in per_source), 10)
        jpeg = CompressedImage(format='jpeg')
        jpeg.format, jpeg.data = encode_compressed(bgr, 'jpeg')
        jpeg.header.frame_id = 'watched-jpeg'
        send_until_classified(cpub, jpeg)
        assert wait_for(lambda: any(o.header.frame_id == 'watched-jpeg' for o in overlays), 10)
        assert int(_diag_overlays(diags)['overlays'].split()[0]) >= len(RAW_ENCODINGS)
    finally:
        for p in (pub, cpub):
            ros.node.destroy_publisher(p)
        code, _, err, _ = stop(node)
    assert code == 0, err


def test_managed_node_configure_activate_deactivate_activate(ros, sample_bgr):
    node = Managed(ros, {'image_topics': ['/lc/image'], 'output_topic': '/lc/classification',
                         'workers': 1}, 'lc_node')
    results = ros.collect(Classification, '/lc/classification')
    labels = ros.collect(LabelInfo, '/lc/classification/label_info', LATCHED)
    pub = ros.node.create_publisher(Image, '/lc/image', 10)

    def flows(tag):
        def arrived():
            if not any(m.header.frame_id == tag for m in results):
                pub.publish(good_image(sample_bgr, tag))
                return False
            return True
        return wait_for(arrived, timeout=20, interval=0.3)

    try:
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert node.change(Transition.TRANSITION_CONFIGURE)
        assert node.state() == State.PRIMARY_STATE_INACTIVE
        assert pub.get_subscription_count() == 0  # loaded, not listening
        assert node.change(Transition.TRANSITION_ACTIVATE)
        assert node.state() == State.PRIMARY_STATE_ACTIVE
        assert wait_for(lambda: labels, timeout=10) and len(labels[0].class_map) == 1000
        assert flows('first-activation')
        assert node.change(Transition.TRANSITION_DEACTIVATE)
        assert wait_for(lambda: pub.get_subscription_count() == 0, timeout=10)
        before = len(results)
        for i in range(3):
            pub.publish(good_image(sample_bgr, f'inactive{i}'))
        assert not wait_for(lambda: len(results) > before, timeout=2), 'published while inactive'
        assert node.change(Transition.TRANSITION_ACTIVATE)
        assert flows('second-activation')
        assert node.change(Transition.TRANSITION_DEACTIVATE)
        assert node.change(Transition.TRANSITION_CLEANUP)
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert node.change(Transition.TRANSITION_CONFIGURE)  # loads again after cleanup
    finally:
        ros.node.destroy_publisher(pub)
        code, _, err, _ = stop(node.proc)
    assert code == 0 and 'Traceback' not in err, err


def test_missing_model_fails_configure_and_the_node_stays_up(ros, tmp_path):
    node = Managed(ros, {'onnx_path': str(tmp_path / 'missing.onnx'), 'backend': 'onnxruntime',
                         'image_topics': ['/lc_bad/image']}, 'lc_bad')
    try:
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not node.change(Transition.TRANSITION_CONFIGURE)
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert node.proc.poll() is None
    finally:
        code, _, err, _ = stop(node.proc)
    assert code == 0, err
    assert f'configure failed: onnxruntime: model file {tmp_path / "missing.onnx"} not found' \
        in err


@pytest.mark.parametrize('steps', [(), (Transition.TRANSITION_CONFIGURE,),
                                   (Transition.TRANSITION_CONFIGURE,
                                    Transition.TRANSITION_ACTIVATE)],
                         ids=['unconfigured', 'inactive', 'active'])
def test_sigint_in_any_state_exits_cleanly(ros, steps):
    name = f'lc_sig{len(steps)}'
    node = Managed(ros, {'image_topics': [f'/{name}/image'], 'workers': 1}, name)
    try:
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED  # up and answering
        for step in steps:
            assert node.change(step)
    finally:
        code, _, err, _ = stop(node.proc, signal.SIGINT)
    assert code == 0 and 'Traceback' not in err, err
