"""The core's promises, end to end over real DDS between processes: a source's results
never go back in time, every frame is counted, a failure in a worker is logged and counted
and the worker lives on, nothing is published after deactivate."""
import time

import cv2
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from rcl_interfaces.msg import Log
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Classification, LabelInfo, VisionInfo

from edge_classifier.wiring.diagnostics import BOOKS, BOOKS_KEY

from ros_helpers import (RELIABLE, change_state, good_image, node_on_fake_bpu, ros_process, stop,
                         wait_for)

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def is_node(status, name):
    """Whether a diagnostic status is node `name`'s ('<name>: ...' or '/ns/<name>: ...')."""
    return status.name.split(':')[0].rsplit('/', 1)[-1] == name


def node_status(diags, name):
    """Every status of node `name` in the collected /diagnostics, as dicts (oldest first)."""
    out = []
    for arr in list(diags):
        for status in arr.status:
            if is_node(status, name):
                values = {kv.key: kv.value for kv in status.values}
                values['_level'] = status.level
                out.append(values)
    return out


def books(values):
    """{source: {received: .., ..., in_flight: ..}} from one status."""
    out = {}
    for key, value in values.items():
        if key.endswith(': ' + BOOKS_KEY):
            out[key[:-len(BOOKS_KEY) - 2]] = dict(zip(BOOKS, map(int, value.split('/'))))
    return out


def balanced(source_books):
    return source_books['received'] == sum(source_books[k] for k in BOOKS[1:])


@pytest.mark.parametrize('workers', [1, 3])
def test_stamps_per_source_never_go_back_under_a_flood_of_slow_to_decode_pngs(
        ros, sample_bgr, workers):
    prefix = f'/order{workers}'
    topics = [f'{prefix}/{cam}/compressed' for cam in ('a', 'b')]
    node = ros_process('edge_classifier.node', {
        'compressed_topics': topics, 'image_topics': [''], 'workers': workers,
        'output_topic': f'{prefix}/classification', 'diagnostics_period': 0.1},
        ros_args=('-r', f'__node:=order{workers}'))
    results, diags = [], ros.collect(DiagnosticArray, '/diagnostics', 100)
    ros.node.create_subscription(Classification, f'{prefix}/classification', results.append,
                                 1000)
    pubs = [ros.node.create_publisher(CompressedImage, t, RELIABLE) for t in topics]
    big = cv2.resize(sample_bgr['chelsea'], (1280, 960))   # a PNG of this size: ~20 ms decode
    msgs = []
    for cam in ('a', 'b'):
        msg = CompressedImage(format='png')
        msg.data = cv2.imencode('.png', big)[1].tobytes()
        msg.header.frame_id = cam
        msgs.append(msg)
    try:
        assert wait_for(lambda: all(p.get_subscription_count() for p in pubs), timeout=30)

        def enough():   # a flood as the node sees it, however fast the machine is
            per_cam = [sum(1 for m in results if m.header.frame_id == cam) for cam in 'ab']
            statuses = node_status(diags[-3:], f'order{workers}')
            now = books(statuses[-1]) if statuses else {}
            return sent >= 30 and min(per_cam) >= 5 and len(now) == 2 and \
                all(b['received'] >= 10 for b in now.values()) and \
                sum(b['dropped'] for b in now.values()) > 0

        t_min, t_max, sent = time.monotonic() + 3.0, time.monotonic() + 120.0, 0
        while time.monotonic() < t_min or (not enough() and time.monotonic() < t_max):
            # as fast as DDS takes them
            sent += 1
            for pub, msg in zip(pubs, msgs):
                msg.header.stamp.sec, msg.header.stamp.nanosec = sent, 0
                try:
                    pub.publish(msg)
                except Exception:   # RCLError "cannot publish data" at full speed
                    time.sleep(0.001)
        done = len(diags)
        assert wait_for(lambda: len(node_status(diags[done:], f'order{workers}')) >= 2 and all(
            b['in_flight'] == 0
            for b in books(node_status(diags, f'order{workers}')[-1]).values()), timeout=20)
    finally:
        for pub in pubs:
            ros.node.destroy_publisher(pub)
        code, _, err, _ = stop(node)
    assert code == 0 and 'Traceback' not in err, err
    for cam in ('a', 'b'):
        stamps = [m.header.stamp.sec for m in results if m.header.frame_id == cam]
        assert len(stamps) >= 5, (cam, len(stamps), sent)
        assert all(x < y for x, y in zip(stamps, stamps[1:])), f'{cam} went back: {stamps}'
    statuses = node_status(diags, f'order{workers}')
    assert statuses and all(balanced(b) for s in statuses for b in books(s).values())
    final = books(statuses[-1])
    assert all(10 <= s['received'] <= sent for s in final.values()), (final, sent)
    assert sum(s['dropped'] for s in final.values()) > 0, 'a flood must drop stale frames'


def test_a_postprocess_failure_is_logged_counted_and_the_worker_lives_on(
        ros, default_cfg, tmp_path, sample_bgr):
    """The fake BPU returns NaN scores (call 2: postprocess refuses them) and then a
    wrong-shaped output (call 3: the backend refuses it); call 1 is the warm-up."""
    rosout = ros.collect(Log, '/rosout', QoSProfile(
        depth=1000, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    diags = ros.collect(DiagnosticArray, '/diagnostics', 100)
    proc = node_on_fake_bpu(default_cfg, tmp_path, '/pp', bad_outputs={'2': 'nan',
                                                                       '3': 'shape'})
    results = ros.collect(Classification, '/pp/classification')
    pub = ros.node.create_publisher(Image, '/pp/image', RELIABLE)

    def latest():
        statuses = node_status(diags, 'edge_classifier')
        return statuses[-1] if statuses else {}

    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=30)
        for i in range(2):
            pub.publish(good_image(sample_bgr, f'bad{i}'))
            assert wait_for(lambda: int(latest().get('errors', 0)) == i + 1, timeout=10), \
                latest()
        pub.publish(good_image(sample_bgr, 'good'))
        assert wait_for(lambda: any(m.header.frame_id == 'good' for m in results), 10)
        assert wait_for(lambda: latest().get('classified') == '1', timeout=5)
        status = latest()
    finally:
        ros.node.destroy_publisher(pub)
        code, _, err, _ = stop(proc)
    assert code == 0, err
    assert status['live_workers'] == status['workers'] == '1'
    assert status['_level'] == DiagnosticStatus.OK
    source = books(status)['/pp/image']
    assert source == dict(received=3, classified=1, dropped=0, malformed=0, errors=2,
                          throttled=0, in_flight=0)
    logged = [m for m in rosout if m.name == 'edge_classifier' and m.level == Log.ERROR]
    assert any('Traceback' in m.msg and 'ScoresError' in m.msg and 'non-finite' in m.msg
               for m in logged), [m.msg for m in logged]
    assert any('inference failed: BackendError' in m.msg and '1007 scores' in m.msg
               for m in logged), [m.msg for m in logged]
    assert not any(m.header.frame_id.startswith('bad') for m in results)


class Stamped:
    """Messages of one topic with the time each arrived here (monotonic)."""

    def __init__(self, ros, msg_type, topic, qos=10, keep=None):
        self.times = []
        self.keep = keep or (lambda msg: True)
        ros.node.create_subscription(msg_type, topic, self._on, qos)
        self.topic = topic

    def _on(self, msg):
        if self.keep(msg):
            self.times.append(time.monotonic())

    def after(self, t):
        return [x for x in self.times if x > t]


def test_nothing_is_published_after_deactivate_returns(ros, default_cfg, tmp_path):
    """A managed node, a 60 Hz camera, the overlays watched: 10 deactivate/activate cycles;
    no message on any output arrives more than 100 ms after the deactivate response, and
    the books balance. The model (the fake BPU) takes 150 ms: frames are still in the
    workers when deactivate returns, so anything not held back would arrive late."""
    name, prefix = 'lc_gate', '/lcg'
    node = node_on_fake_bpu(default_cfg, tmp_path, prefix, 'edge_classifier.lifecycle_node', {
        'per_source_output': True, 'workers': 2, 'diagnostics_period': 0.05,
        'overlay_width': 160}, ros_args=('-r', f'__node:={name}'), delay_ms=150)
    camera = ros_process('edge_classifier.tools.sample_camera', {
        'topic': f'{prefix}/image', 'rate': 60.0, 'width': 320, 'height': 240})
    out = f'{prefix}/classification'
    per_source = f'{prefix}/image/classification'
    outputs = [Stamped(ros, Classification, out), Stamped(ros, Classification, per_source),
               Stamped(ros, Image, out + '/overlay', 1),
               Stamped(ros, Image, per_source + '/overlay', 1),
               Stamped(ros, LabelInfo, out + '/label_info', LATCHED),
               Stamped(ros, VisionInfo, out + '/vision_info', LATCHED),
               Stamped(ros, DiagnosticArray, '/diagnostics', 100,
                       keep=lambda m: any(is_node(s, name) for s in m.status))]
    diags = ros.collect(DiagnosticArray, '/diagnostics', 100)
    late = []

    def change(transition_id):
        assert change_state(ros, f'/{name}', transition_id, timeout=30), transition_id
        return time.monotonic()   # answered (or, response lost, the state seen)

    try:
        change(Transition.TRANSITION_CONFIGURE)
        for cycle in range(10):
            change(Transition.TRANSITION_ACTIVATE)
            counts = [len(o.times) for o in outputs[:4]]
            assert wait_for(lambda: all(len(o.times) >= c + 3 for o, c in
                                        zip(outputs[:4], counts)), timeout=20), \
                (cycle, [(o.topic, len(o.times)) for o in outputs])
            answered = change(Transition.TRANSITION_DEACTIVATE)
            time.sleep(0.6)
            for o in outputs:
                late += [(cycle, o.topic, round(t - answered, 3))
                         for t in o.after(answered + 0.1)]
        change(Transition.TRANSITION_ACTIVATE)
        assert wait_for(lambda: len(node_status(diags, name)) > 3, timeout=10)
        time.sleep(0.3)
        statuses = [s for s in node_status(diags, name) if books(s)]
    finally:
        stop(camera)
        code, _, err, _ = stop(node)
    assert not late, f'published after deactivate: {late[:10]}'
    assert code == 0 and 'Traceback' not in err, err
    assert statuses and all(balanced(b) for s in statuses for b in books(s).values())
    final = books(statuses[-1])[f'{prefix}/image']
    assert final['received'] >= final['classified'] >= 30  # at least 3 per cycle
    assert final['dropped'] > 0   # what was in the workers at each deactivate, at least
