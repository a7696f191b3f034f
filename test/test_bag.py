"""Recorded data: rosbag2 bags (MCAP and a Humble-style SQLite3 bag, written with the
rosbags library) classified offline by edge-classifier-bag, compared against the live node
fed the same bag by sample_camera, two-stage bags, two models compared, and bad bags."""
import re
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification

from edge_classifier.tools.encode import encode_raw
from edge_classifier.frames import image_msg_to_frame
from edge_classifier.tools import bag as bagtool

from conftest import EXPECTED_TOP1
from ros_helpers import ros_process, stop, wait_for

STAMPS = 12


def run(*argv):
    done = subprocess.run([sys.executable, '-m', 'edge_classifier.tools.bag', *map(str, argv)],
                          capture_output=True, text=True, timeout=300)
    assert 'Traceback' not in done.stderr, done.stderr
    return done


def read(path):
    """{topic: [(bag time, message)]} of a bag, and {topic: msgtype}."""
    store = bagtool.typestore()
    reader = bagtool.open_bag(path)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
        got = {t: [] for t in types}
        for conn, stamp, raw in reader.messages():
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except Exception:   # a damaged message, copied as recorded
                msg = None
            got[conn.topic].append((stamp, msg))
        return got, types
    finally:
        reader.close()


def stamp_of(header):
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def as_humble(path):
    """What Humble's rosbag2 writes: metadata version 5 (no custom_data, ros_distro, files
    or type description hashes; each topic's QoS a YAML string)."""
    meta_path = path / 'metadata.yaml'
    meta = yaml.safe_load(meta_path.read_text())
    info = meta['rosbag2_bagfile_information']
    info['version'] = 5
    for key in ('custom_data', 'ros_distro', 'files'):
        info.pop(key, None)
    for topic in info['topics_with_message_count']:
        metadata = topic['topic_metadata']
        metadata.pop('type_description_hash', None)
        metadata['offered_qos_profiles'] = ''
    meta_path.write_text(yaml.safe_dump(meta))
    return path


@pytest.fixture(scope='module')
def photo_bag(tmp_path_factory, default_cfg):
    path = tmp_path_factory.mktemp('bags') / 'photos'
    written = bagtool.write_sample_bag(path, 'mcap', 'bgr8', frames=STAMPS, rate=10.0)
    return path, written


@pytest.fixture(scope='module')
def offline(photo_bag, tmp_path_factory):
    out = tmp_path_factory.mktemp('out') / 'classified'
    done = run('classify', photo_bag[0], '--output', out, '--workers', 2)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_every_image_of_the_bag_is_classified_into_a_bag_that_reads_back(photo_bag, offline,
                                                                         classifier):
    path, written = photo_bag
    out, stdout = offline
    got, types = read(out)
    assert types['/camera/image_raw'] == 'sensor_msgs/msg/Image'
    assert types['/camera/image_raw/classification'] == 'vision_msgs/msg/Classification'
    assert types['/camera/image_raw/classification/label_info'] == 'vision_msgs/msg/LabelInfo'
    images, results = got['/camera/image_raw'], got['/camera/image_raw/classification']
    assert [t for t, _ in images] == [t for t, _ in written]   # every input copied, in order
    assert len(results) == STAMPS
    for (t_img, image), (t_res, result) in zip(images, results):
        # each result beside its image: the same bag time and the image's own header
        assert t_res == t_img and stamp_of(result.header) == stamp_of(image.header)
        assert result.header.frame_id == image.header.frame_id
        expected = classifier.classify(image_msg_to_frame(image))   # the node's path
        assert [r.class_id for r in result.results] == [h.class_id for h in expected]
        assert np.allclose([r.score for r in result.results], [h.score for h in expected],
                           atol=1e-5)
        if image.header.frame_id in EXPECTED_TOP1:
            assert result.results[0].class_id in EXPECTED_TOP1[image.header.frame_id]
    (_, labels), = got['/camera/image_raw/classification/label_info']
    assert len(labels.class_map) == 1000 and labels.class_map[967].class_name == 'espresso'
    # the summary table
    row = next(line for line in stdout.splitlines() if line.startswith('| /camera/image_raw'))
    assert re.match(rf'\| /camera/image_raw \| {STAMPS} \| {STAMPS} \| 0 \| 0 \| ', row), row


def test_the_live_node_fed_the_bag_by_the_sample_camera_says_the_same(ros, photo_bag,
                                                                      offline):
    """sample_camera replays the bag (original stamps, looping) into classifier_node: for
    every stamp, the live top-1 is the offline one."""
    path, written = photo_bag
    got, _ = read(offline[0])
    offline_top = {stamp_of(m.header): m.results[0].class_id
                   for _, m in got['/camera/image_raw/classification']}
    live = ros.collect(Classification, '/bagnode/classification')
    node = ros_process('edge_classifier.node', {'image_topics': ['/bagnode/image'],
                                                'output_topic': '/bagnode/classification'})
    cam = ros_process('edge_classifier.tools.sample_camera', {
        'source': str(path), 'topic': '/bagnode/image', 'stamps': 'original'})
    try:
        assert wait_for(lambda: {stamp_of(m.header) for m in live} >= set(offline_top),
                        timeout=120), (len(live), node.poll())
    finally:
        cam_code, _, cam_err, _ = stop(cam)
        code, _, err, _ = stop(node)
    assert cam_code == 0 and code == 0, cam_err + err
    for msg in list(live):
        assert msg.results[0].class_id == offline_top[stamp_of(msg.header)]
    assert 'replaying /camera/image_raw' in cam_err


def test_the_replay_takes_the_recorded_pace_and_can_stamp_now_and_stop(ros, photo_bag):
    path, written = photo_bag
    images = ros.collect(Image, '/bagpace/image')
    cam = ros_process('edge_classifier.tools.sample_camera', {
        'source': str(path), 'topic': '/bagpace/image', 'stamps': 'now', 'loop': False})
    try:
        assert wait_for(lambda: cam.poll() is not None or len(images) >= STAMPS - 2, 60)
        time.sleep(1.0)   # once: nothing more comes
        count = len(images)
        time.sleep(1.0)
        assert len(images) == count
    finally:
        code, _, err, _ = stop(cam)
    assert code == 0, err
    assert 'end of the bag: 12 frames published' in err
    stamps = [stamp_of(m.header) * 1e-9 for m in images]
    assert all(abs(s - time.time()) < 120 for s in stamps)   # stamped now, not in 2023
    # the recorded pace: 10 Hz (0.1 s apart), whatever the machine
    gaps = np.diff(stamps)
    assert 0.05 < float(np.median(gaps)) < 0.2, gaps


@pytest.mark.parametrize('encoding', ['jpeg', 'yuv422_yuy2'])
def test_a_humble_sqlite3_bag_is_read_in_every_encoding_the_node_takes(
        tmp_path, encoding, classifier):
    path = tmp_path / 'humble'
    bagtool.write_sample_bag(path, 'sqlite3', encoding, frames=6)
    as_humble(path)
    assert list(path.glob('*.db3'))
    out = tmp_path / 'out'
    done = run('classify', path, '--output', out)
    assert done.returncode == 0, done.stderr
    got, types = read(out)
    topic = [t for t, m in types.items() if m in bagtool.IMAGE_TYPES][0]
    results = got[topic + '/classification']
    assert len(results) == 6
    for (_, image), (_, result) in zip(got[topic], results):
        expected = classifier.classify(bagtool.to_frame(types[topic], image,
                                                        classifier.geometry))
        assert result.results[0].class_id == expected[0].class_id
        if image.header.frame_id in EXPECTED_TOP1:
            assert result.results[0].class_id in EXPECTED_TOP1[image.header.frame_id]


def test_a_two_stage_bag_gives_each_tile_its_top1(tmp_path):
    path = tmp_path / 'two_stage'
    bagtool.write_sample_bag(path, 'mcap', 'bgr8', frames=3, detections_topic='/detections')
    out = tmp_path / 'out'
    done = run('classify', path, '--output', out, '--detections', '/detections')
    assert done.returncode == 0, done.stderr
    got, types = read(out)
    assert types['/camera/image_raw/classified_detections'] == \
        'vision_msgs/msg/Detection2DArray'
    assert '/camera/image_raw/classification' not in types   # boxes instead of frames
    assert len(got['/detections']) == 3                      # the input arrays copied
    arrays = got['/camera/image_raw/classified_detections']
    assert len(arrays) == 3
    seen = set()
    for (_, image), (_, array) in zip(got['/camera/image_raw'], arrays):
        assert stamp_of(array.header) == stamp_of(image.header)
        assert [d.id for d in array.detections] == image.header.frame_id.split('+')
        for detection in array.detections:
            top = detection.results[0].hypothesis.class_id
            if detection.id in EXPECTED_TOP1:
                assert top in EXPECTED_TOP1[detection.id], (detection.id, top)
                seen.add(detection.id)
    assert {'coffee', 'camera'} <= seen


def test_two_models_are_compared_and_their_worst_disagreements_drawn(
        tmp_path, photo_bag, default_cfg):
    """Lite0 against itself fed BGR where it expects RGB (a real preprocessing slip): the
    table says how often they agree; the frames they disagree on most are drawn."""
    swapped = tmp_path / 'lite0_bgr.yaml'
    doc = yaml.safe_load(open(bagtool.resources.config_dir() / 'efficientnet_lite0.yaml'))
    params = doc['/**']['ros__parameters']
    params['channel_order'] = 'bgr' if params.get('channel_order', 'rgb') == 'rgb' else 'rgb'
    params['model_name'] = 'lite0_swapped'
    params['onnx_path'] = str(default_cfg.resolve(default_cfg.onnx_path))
    params['labels_path'] = str(default_cfg.resolve(default_cfg.labels_path))
    swapped.write_text(yaml.safe_dump(doc))
    out = tmp_path / 'worst'
    done = run('compare', photo_bag[0], '--models', f'efficientnet_lite0,{swapped}',
               '--output', out, '--worst', 3)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines()
               if line.startswith('| /camera/image_raw'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1] == str(STAMPS)
    agree, total = map(int, cells[2].split(' ')[0].split('/'))
    assert total == STAMPS and agree < STAMPS     # the slip changes some top-1
    drawn = sorted(out.glob('*.png'))
    assert 1 <= len(drawn) <= 3
    picture = cv2.imread(str(drawn[0]))
    assert picture.shape[1] == 2 * 640 and picture.shape[0] == 480   # side by side


def test_compare_with_itself_agrees_everywhere(photo_bag):
    done = run('compare', photo_bag[0], '--models', 'efficientnet_lite0,efficientnet_lite0')
    assert done.returncode == 0, done.stderr
    assert f'{STAMPS}/{STAMPS} (100.0 %)' in done.stdout


# ---- bad bags: a clear error naming the file and topic, or the frame counted malformed ----
def test_a_topic_of_another_type_is_refused_naming_it(tmp_path, photo_bag):
    path = tmp_path / 'two_stage'
    bagtool.write_sample_bag(path, 'mcap', 'bgr8', frames=2, detections_topic='/detections')
    done = run('classify', path, '--output', tmp_path / 'o', '--topics', '/detections')
    assert done.returncode == 2
    assert str(path) in done.stderr and '/detections' in done.stderr
    assert 'Detection2DArray' in done.stderr and '/camera/image_raw' in done.stderr
    done = run('classify', path, '--output', tmp_path / 'o', '--topics', '/nope')
    assert done.returncode == 2 and 'no topic /nope' in done.stderr
    assert not (tmp_path / 'o').exists()


def test_not_a_bag_and_an_existing_output_are_clear_errors(tmp_path, photo_bag):
    done = run('classify', tmp_path / 'missing', '--output', tmp_path / 'o')
    assert done.returncode == 2 and 'no such bag' in done.stderr
    (tmp_path / 'empty').mkdir()
    done = run('classify', tmp_path / 'empty', '--output', tmp_path / 'o')
    assert done.returncode == 2 and 'no metadata.yaml' in done.stderr
    (tmp_path / 'exists').mkdir()
    done = run('classify', photo_bag[0], '--output', tmp_path / 'exists')
    assert done.returncode == 2 and 'exists' in done.stderr


def test_a_truncated_bag_file_is_a_clear_error_naming_it(tmp_path, photo_bag):
    path = tmp_path / 'truncated'
    shutil.copytree(photo_bag[0], path)
    data = next(path.glob('*.mcap'))
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    done = run('classify', path, '--output', tmp_path / 'o')
    assert done.returncode == 2, done.stdout
    assert str(path) in done.stderr and ('damaged' in done.stderr or 'cannot read' in
                                         done.stderr), done.stderr


def test_frames_that_cannot_be_used_are_counted_malformed_and_the_rest_goes_on(tmp_path):
    """An unknown encoding, a float image, a cut message, a bomb PNG header: each counted
    malformed, the good frames around them classified, exit 0."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    store = bagtool.typestore()
    t = store.types
    path = tmp_path / 'mixed'
    good = encode_raw(np.full((480, 640, 3), 128, np.uint8), 'bgr8')

    def image(i, encoding, step, data, h=480, w=640):
        return t[bagtool.IMAGE](header=t['std_msgs/msg/Header'](
            stamp=t['builtin_interfaces/msg/Time'](sec=i, nanosec=0), frame_id=f'f{i}'),
            height=h, width=w, encoding=encoding, is_bigendian=0, step=step,
            data=np.frombuffer(data, np.uint8))

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/cam', bagtool.IMAGE, typestore=store)
        frames = [image(0, 'bgr8', good.step, good.data),
                  image(1, 'bayer_rggb16', 1280, bytes(1280 * 480)),
                  image(2, 'bgr8', good.step, good.data),
                  image(3, 'weird', good.step, good.data),
                  image(4, 'bgr8', good.step, good.data[:1000])]
        for i, msg in enumerate(frames):
            raw = store.serialize_cdr(msg, bagtool.IMAGE)
            writer.write(conn, (i + 1) * 10**9, raw[:200] if i == 2 else raw)
        last = image(5, 'bgr8', good.step, good.data)
        writer.write(conn, 6 * 10**9, store.serialize_cdr(last, bagtool.IMAGE))
    out = tmp_path / 'out'
    done = run('classify', path, '--output', out)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith('| /cam'))
    assert re.match(r'\| /cam \| 6 \| 2 \| 4 \| 0 \| ', row), row
    assert 'not classified' in done.stdout
    got, _ = read(out)
    assert len(got['/cam']) == 6   # every input kept, the bad ones too
    assert [m.header.frame_id for _, m in got['/cam/classification']] == ['f0', 'f5']


def test_the_output_bag_decodes_with_foxgloves_own_mcap_reader(offline):
    """What Foxglove opens: the mcap library with its ROS 2 (ros2msg/cdr) decoder."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    (data,) = offline[0].glob('*.mcap')
    with open(data, 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        schemas = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
        assert schemas['/camera/image_raw/classification'].name == \
            'vision_msgs/msg/Classification'
        assert all(s.encoding == 'ros2msg' for s in schemas.values())
        decoded = [(channel.topic, msg) for _, channel, _, msg in reader.iter_decoded_messages()]
    results = [m for t, m in decoded if t == '/camera/image_raw/classification']
    assert len(results) == STAMPS
    assert {m.header.frame_id for m in results} >= {'coffee', 'camera'}
    assert all(0.0 <= m.results[0].score <= 1.0 for m in results)


def test_run_images_emits_every_item_once_in_order_and_one_at_a_time(classifier):
    """The pool finishes frames out of order on its workers; the writer must see them in
    the bag's order, one call at a time (two at once corrupted the MCAP file), none lost."""
    import threading
    store = bagtool.typestore()
    t = store.types
    raw = encode_raw(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8),
                     'bgr8')
    items = []
    for i in range(60):
        if i % 7 == 3:   # other messages pass through in place
            items.append(('/other', 'std_msgs/msg/String', i,
                          store.serialize_cdr(t['std_msgs/msg/String'](data=str(i)),
                                              'std_msgs/msg/String')))
            continue
        msg = t[bagtool.IMAGE](header=t['std_msgs/msg/Header'](
            stamp=t['builtin_interfaces/msg/Time'](sec=i, nanosec=0), frame_id='c'),
            height=raw.height, width=raw.width, encoding='bgr8', is_bigendian=0,
            step=raw.step, data=np.frombuffer(raw.data, np.uint8))
        cdr = store.serialize_cdr(msg, bagtool.IMAGE)
        items.append(('/cam', bagtool.IMAGE, i, cdr[:100] if i % 11 == 5 else cdr))
    seen, inside = [], []
    guard = threading.Lock()

    def on_outcome(outcome):
        assert guard.acquire(blocking=False), 'two emitters at once'
        try:
            inside.append(threading.get_ident())
            time.sleep(0.002)   # widen the window a second emitter would need
            seen.append((outcome.time, outcome.kind))
        finally:
            guard.release()

    bagtool.run_images(classifier, iter(items), 3, on_outcome=on_outcome)
    assert [s[0] for s in seen] == list(range(60))
    kinds = dict(seen)
    assert all(kinds[i] == 'copied' for i in range(60) if i % 7 == 3)
    assert all(kinds[i] == 'malformed' for i in range(60) if i % 11 == 5 and i % 7 != 3)
    assert sum(k == 'classified' for k in kinds.values()) == \
        sum(1 for i in range(60) if i % 7 != 3 and i % 11 != 5)
    assert len(set(inside)) > 1   # emitted from several threads, still one at a time


def test_ctrl_c_ends_a_run_with_a_shorter_complete_bag(tmp_path, default_cfg):
    """SIGINT mid-run: exit 130, no traceback, and OUT reads back holding the frames
    classified so far (the model: the fake BPU at 100 ms an inference, so the run is long
    on any machine)."""
    import json
    import os
    import signal
    from pathlib import Path
    fake = Path(__file__).resolve().parent / 'fake_bpu'
    spec = {'onnx': str(default_cfg.resolve(default_cfg.onnx_path)), 'mean': default_cfg.mean,
            'scale': [1.0 / s for s in default_cfg.std], 'layout': 'NCHW',
            'shape': [1, 3, default_cfg.input_height, default_cfg.input_width],
            'tensor_type': 'NV12', 'delay_ms': 100}
    (tmp_path / 'model.bin').write_text(json.dumps(spec))
    doc = yaml.safe_load(open(bagtool.resources.config_dir() / 'efficientnet_lite0.yaml'))
    doc['/**']['ros__parameters'].update(
        backend='bpu', bpu_path=str(tmp_path / 'model.bin'),
        labels_path=str(default_cfg.resolve(default_cfg.labels_path)))
    (tmp_path / 'slow.yaml').write_text(yaml.safe_dump(doc))
    path = tmp_path / 'bag'
    bagtool.write_sample_bag(path, 'mcap', 'bgr8', frames=60, size=(320, 240))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(fake), os.environ.get('PYTHONPATH')])))
    proc = subprocess.Popen([sys.executable, '-m', 'edge_classifier.tools.bag', 'classify',
                             str(path), '--output', str(tmp_path / 'out'), '--workers', '1',
                             '--model', str(tmp_path / 'slow.yaml')],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert wait_for(lambda: (tmp_path / 'out').exists() or proc.poll() is not None, 60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert 'Traceback' not in err and 'interrupted' in err
    got, _ = read(tmp_path / 'out')
    results = got['/camera/image_raw/classification']
    assert 0 < len(results) < 60
    assert len(got['/camera/image_raw']) >= len(results)
