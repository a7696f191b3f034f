"""The two-stage pipeline over real DDS: classifier_node pairs each camera's Image with its
detector's Detection2DArray by header and publishes every detection with its box's top-k
on classified_detections. Real photos, the real default model, separate processes."""
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray

from edge_classifier.tools.encode import encode_raw
from edge_classifier.tools.sample_camera import load_frames, mosaic

from ros_helpers import Diagnostics, ros_process, small, stop, wait_for

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


PAIRING = 'images/detections/paired/images_unmatched/detections_orphaned/images_waiting/' \
          'detections_waiting'


def image_msg(bgr, stamp, frame_id='cam'):
    raw = encode_raw(bgr, 'bgr8')
    msg = Image(height=raw.height, width=raw.width, encoding='bgr8', step=raw.step)
    msg.data = raw.data
    msg.header.stamp.sec, msg.header.frame_id = stamp, frame_id
    return msg


def detections_msg(boxes, stamp, frame_id='cam', ids=None):
    msg = Detection2DArray()
    msg.header.stamp.sec, msg.header.frame_id = stamp, frame_id
    for i, (cx, cy, w, h) in enumerate(boxes):
        bbox = BoundingBox2D(size_x=float(w), size_y=float(h))
        bbox.center.position.x, bbox.center.position.y = float(cx), float(cy)
        msg.detections.append(Detection2D(bbox=bbox, id=(ids[i] if ids else f'box{i}')))
    return msg


def cli_top1(paths):
    """The top-1 class id of each image file, by the classify CLI (the whole-frame path)."""
    out = subprocess.run([sys.executable, '-m', 'edge_classifier.classify', *map(str, paths)],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith('{')]
    return {line['image']: line['results'][0]['class_id'] for line in lines}


def test_mosaic_tiles_get_the_top1_of_each_tile_classified_alone(ros, tmp_path):
    """The stand-in detector (sample_camera with detections_topic) publishes 2x2 mosaics of
    the sample photos with their tiles as boxes; each box's top-1 equals the CLI's top-1 for
    that tile saved as a file."""
    node = ros_process('edge_classifier.node', {
        'image_topics': ['/m/image'], 'detection_topics': ['/m/detections'],
        'detections_output_topic': '/m/classified_detections', 'top_k': 3})
    outputs = ros.collect(Detection2DArray, '/m/classified_detections')
    camera = ros_process('edge_classifier.tools.sample_camera', {
        'topic': '/m/image', 'detections_topic': '/m/detections', 'rate': 4.0})
    try:
        photos = load_frames('')
        frames = []
        for start in range(0, len(photos), 4):
            image, tiles = mosaic(photos, 2, 640, 480, start)
            frames.append(tiles)
            for name, (cx, cy, w, h) in tiles:
                x, y = int(cx - w / 2), int(cy - h / 2)
                cv2.imwrite(str(tmp_path / f'{name}.png'), image[y:y + int(h), x:x + int(w)])
        expected = {Path(path).stem: top1
                    for path, top1 in cli_top1(sorted(tmp_path.glob('*.png'))).items()}
        assert wait_for(lambda: len(outputs) >= 2 * len(frames), timeout=60), \
            f'{len(outputs)} Detection2DArray on /m/classified_detections'
        seen = {}
        for msg in outputs:
            assert len(msg.detections) == 4
            assert msg.header.frame_id == 'camera_optical_frame'
            for det in msg.detections:
                assert len(det.results) == 3
                scores = [r.hypothesis.score for r in det.results]
                assert scores == sorted(scores, reverse=True)
                seen[det.id] = det.results[0].hypothesis.class_id
        assert seen == expected
        assert len(set(seen.values())) >= 4   # the tiles really differ
    finally:
        stop(camera)
        code, _, err, _ = stop(node)
    assert code == 0 and 'Traceback' not in err, err


@pytest.fixture(scope='module')
def photos(sample_bgr):
    """The sample photos at 240 px high: frames the test's own process can publish back to
    back (without the large-frames DDS profile, frames over ~512 KiB published in a burst
    are repaired by the reliable protocol seconds later: README, QoS and large frames)."""
    return {name: small(bgr) for name, bgr in sample_bgr.items()}


@pytest.fixture(scope='module')
def pair_node(ros):
    proc = ros_process('edge_classifier.node', {
        'image_topics': ['/front/image', '/rear/image'],
        'detection_topics': ['/front/detections', '/rear/detections'],
        'detections_output_topic': '/ts/classified_detections', 'output_topic': '/ts/cls',
        # a generous timeout: on a busy machine DDS itself may repair a large message late
        'detection_timeout': 2.0, 'diagnostics_period': 0.2, 'max_detections': 4,
        'top_k': 2})
    outputs = ros.collect(Detection2DArray, '/ts/classified_detections', RELIABLE)
    pubs = {name: ros.node.create_publisher(msg_type, f'/{cam}/{kind}', RELIABLE)
            for cam in ('front', 'rear')
            for name, msg_type, kind in ((f'{cam}_image', Image, 'image'),
                                         (f'{cam}_det', Detection2DArray, 'detections'))}
    assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()),
                    timeout=30), 'the node never subscribed'
    yield proc, outputs, pubs, Diagnostics(ros, 'edge_classifier')
    code, _, err, _ = stop(proc)
    assert code == 0, err
    assert 'Traceback' not in err, err


def output_for(outputs, stamp, frame_id='cam', timeout=20, diag=None):
    found = []

    def arrived():
        found[:] = [m for m in outputs if m.header.stamp.sec == stamp and
                    m.header.frame_id == frame_id]
        return bool(found)

    assert wait_for(arrived, timeout=timeout), \
        f'no output for stamp {stamp} {frame_id}' + (f': {diag.latest}' if diag else '')
    return found[0]


def whole(bgr):
    h, w = bgr.shape[:2]
    return (w / 2, h / 2, w, h)


def test_detections_after_and_before_their_image_are_paired(pair_node, photos, classifier):
    _, outputs, pubs, _ = pair_node
    coffee = photos['coffee']
    expected = classifier.classify(_frame(coffee))
    for stamp, first, second in ((11, 'front_image', 'front_det'),     # detector behind
                                 (12, 'front_det', 'front_image')):    # detections first
        for kind in (first, second):
            pubs[kind].publish(image_msg(coffee, stamp) if kind == 'front_image'
                               else detections_msg([whole(coffee)], stamp))
            time.sleep(0.05)
        msg = output_for(outputs, stamp)   # (one at a time: the newest frame wins)
        det = msg.detections[0]
        assert det.id == 'box0' and det.bbox.size_x == coffee.shape[1]
        # a box over the whole image: the whole-frame path's top-k
        assert [(r.hypothesis.class_id, pytest.approx(r.hypothesis.score, abs=1e-6))
                for r in det.results] == [(h.class_id, h.score) for h in expected[:2]]


def _frame(bgr):
    from edge_classifier.frames import image_to_frame
    raw = encode_raw(bgr, 'bgr8')
    return image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)


def test_images_without_detections_are_dropped_counted(pair_node, photos):
    _, outputs, pubs, diag = pair_node
    before = diag.value(f'/front/image: {PAIRING}', '0/0/0/0/0/0/0').split('/')
    pubs['front_image'].publish(image_msg(photos['coffee'], 21))   # never detected
    pubs['front_det'].publish(detections_msg([(10, 10, 20, 20)], 22, 'elsewhere'))

    def counted():
        now = diag.value(f'/front/image: {PAIRING}', '0/0/0/0/0/0/0').split('/')
        return int(now[3]) > int(before[3]) and int(now[4]) > int(before[4]) and \
            now[5] == now[6] == '0'

    assert wait_for(counted, timeout=10), diag.latest
    assert not [m for m in outputs if m.header.stamp.sec in (21, 22)]


def test_two_cameras_with_their_own_detectors_do_not_mix(pair_node, photos):
    _, outputs, pubs, diag = pair_node
    cat, rocket = photos['chelsea'], photos['rocket']
    # same stamp and frame_id on both cameras: only the topic tells them apart
    pubs['front_image'].publish(image_msg(cat, 31))
    pubs['rear_image'].publish(image_msg(rocket, 31))
    pubs['rear_det'].publish(detections_msg([whole(rocket)], 31, ids=['rear']))
    pubs['front_det'].publish(detections_msg([whole(cat)], 31, ids=['front']))
    assert wait_for(lambda: len([m for m in outputs if m.header.stamp.sec == 31]) == 2,
                    timeout=20), '\n'.join(f'{k} = {v}' for k, v in diag.latest.items())
    by_id = {m.detections[0].id: m.detections[0].results[0].hypothesis.class_id
             for m in outputs if m.header.stamp.sec == 31}
    assert by_id['front'] in {'281', '282', '283', '284', '285'}
    assert by_id['rear'] in {'657', '744'}


def test_the_bad_box_corpus_is_skipped_counted_and_the_node_goes_on(pair_node, photos):
    _, outputs, pubs, diag = pair_node
    coffee = photos['coffee']
    h, w = coffee.shape[:2]
    corpus = [(np.nan, 10, 10, 10), (10, np.inf, 10, 10), (50, 50, -10, 10),
              (50, 50, 10, -np.inf), (-500, -500, 10, 10), (w + 100, 10, 10, 10),
              (w / 2, h / 2, 3, 3), (w - 1, h - 1, 100, 100), whole(coffee)]
    skipped_before = diag.value('boxes_skipped')
    pubs['front_image'].publish(image_msg(coffee, 41))
    pubs['front_det'].publish(detections_msg(corpus, 41))
    msg = output_for(outputs, 41)
    assert [d.id for d in msg.detections] == [f'box{i}' for i in range(len(corpus))]
    assert [len(d.results) for d in msg.detections] == [0] * 7 + [2, 2]   # the corner clipped
    assert wait_for(lambda: diag.value('boxes_skipped') >= skipped_before + 7, timeout=10)

    # 10,000 boxes in one array: max_detections (4) classified, the rest skipped, counted
    rng = np.random.default_rng(5)
    many = np.column_stack([rng.uniform(0, w, 10000), rng.uniform(0, h, 10000),
                            rng.uniform(20, 200, 10000), rng.uniform(20, 200, 10000)])
    # (the array first, its image right after: the node takes the array from DDS at once
    # but needs 0.1-0.5 s to read 10,000 boxes; that is its own time, and the pair is made)
    pubs['front_det'].publish(detections_msg(many, 42))
    pubs['front_image'].publish(image_msg(coffee, 42))
    msg = output_for(outputs, 42, timeout=60, diag=diag)
    assert len(msg.detections) == 10000
    assert sum(1 for d in msg.detections if d.results) == 4
    assert wait_for(lambda: diag.value('boxes_skipped') >= skipped_before + 7 + 9996,
                    timeout=10), diag.latest

    # and the node goes on
    pubs['front_image'].publish(image_msg(coffee, 43))
    pubs['front_det'].publish(detections_msg([whole(coffee)], 43))
    assert output_for(outputs, 43).detections[0].results[0].hypothesis.class_id == '967'


def test_the_overlay_draws_the_boxes_while_watched(pair_node, ros, photos):
    from edge_classifier.overlay import BOX_COLOURS
    _, outputs, pubs, _ = pair_node
    overlays = ros.collect(Image, '/ts/cls/overlay', 1)
    coffee = photos['coffee']                          # 360x240; overlay 640 px wide
    box = (180, 120, 120, 90)                          # x 120..239, y 75..164
    for stamp in range(51, 71):   # until the node has seen the overlay's subscriber
        pubs['front_image'].publish(image_msg(coffee, stamp))
        pubs['front_det'].publish(detections_msg([box], stamp))
        if wait_for(lambda: overlays, timeout=0.5):
            break
    assert overlays, 'no overlay while /ts/cls/overlay is watched'
    last = overlays[-1]
    image = np.frombuffer(last.data, np.uint8).reshape(last.height, last.width, 3)
    scale = 640 / 360
    x0, y0 = round(120 * scale), round(75 * scale)
    assert overlays[-1].width == 640
    assert tuple(image[y0 + 40, x0]) == BOX_COLOURS[0]   # the box's left edge


def test_detection_topics_must_pair_with_the_image_topics():
    proc = ros_process('edge_classifier.node', {
        'image_topics': ['/a/image', '/b/image'], 'detection_topics': ['/a/detections']})
    code, _, err, _ = stop(proc, sig=None, timeout=30)
    assert code == 2, err
    assert 'parameter detection_topics' in err and '1 topic(s) for 2 image topic(s)' in err
    assert 'one Detection2DArray topic per entry of image_topics' in err
    assert 'Traceback' not in err
