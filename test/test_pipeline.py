"""The ROS-free core end to end: real photos, the real default model, the worker pool."""
import threading
import time

import cv2
import numpy as np
import pytest

from edge_classifier.frames import Frame, FrameError, read_image
from edge_classifier.pipeline import Classifier
from edge_classifier.pool import WorkerPool
from edge_classifier.postprocess import top_k

from conftest import EXPECTED_TOP1
from helpers import tiny_config, wait_for


def float_rgb_top1(clf, bgr):
    """The float reference: resize 256 / crop 224 in RGB, no NV12 round trip."""
    cfg = clf.cfg
    h, w = bgr.shape[:2]
    s = cfg.resize_short_side / min(h, w)
    rgb = cv2.cvtColor(cv2.resize(bgr, (round(w * s), round(h * s))), cv2.COLOR_BGR2RGB)
    y, x = (rgb.shape[0] - 224) // 2, (rgb.shape[1] - 224) // 2
    x_in = (rgb[y:y + 224, x:x + 224].astype(np.float32) - cfg.mean) / cfg.std
    scores = clf.backend.run_blob(np.ascontiguousarray(x_in.transpose(2, 0, 1)[None],
                                                       np.float32))
    return top_k(scores[0], 1)[0].class_id


def test_default_model_gives_sensible_classes_through_nv12(classifier, samples):
    for name, expected in EXPECTED_TOP1.items():
        results = classifier.classify(read_image(samples[name]))
        assert len(results) == 5
        assert results[0].class_id in expected, (name, results[0])
        scores = [h.score for h in results]
        assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
    coffee = classifier.classify(read_image(samples['coffee']))[0]
    assert coffee.class_name == 'espresso' and coffee.score > 0.9


def test_nv12_top1_equals_float_rgb_top1_on_every_sample(classifier, samples, sample_bgr):
    for name in samples:
        nv12_top1 = classifier.classify(read_image(samples[name]))[0].class_id
        assert nv12_top1 == float_rgb_top1(classifier, sample_bgr[name]), name


def test_classify_is_thread_safe(classifier, samples):
    frames = {n: read_image(p) for n, p in samples.items()}
    expected = {n: classifier.classify(f)[0].class_id for n, f in frames.items()}
    errors = []

    def run():
        for _ in range(3):
            for n, f in frames.items():
                if classifier.classify(f)[0].class_id != expected[n]:
                    errors.append(n)

    threads = [threading.Thread(target=run) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors


class Collector:
    def __init__(self):
        self.results, self.errors = [], []
        self.event = threading.Event()

    def on_result(self, result):
        self.results.append(result)
        self.event.set()

    def on_error(self, source, kind, exc):
        self.errors.append((source, kind, str(exc)))
        self.event.set()

    def wait(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.results) + len(self.errors) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.results) + len(self.errors) >= n


def test_pool_classifies_and_carries_the_source_header(classifier, samples):
    out = Collector()
    frame = read_image(samples['coffee'])
    with WorkerPool(classifier, 2, out.on_result, out.on_error) as pool:
        pool.submit('/cam_a', lambda: frame, {'stamp': 1})
        assert out.wait(1)
        pool.submit('/cam_b', lambda: frame, {'stamp': 2})
        assert out.wait(2)
        stats = pool.stats()
    got = sorted((r.source, r.meta['stamp']) for r in out.results)
    assert got == [('/cam_a', 1), ('/cam_b', 2)]
    assert all(r.hypotheses[0].class_id == '967' for r in out.results)
    assert stats['classified'] == 2 and stats['received'] == 2 and stats['dropped'] == 0
    assert stats['inference_ms_p50'] > 0 and stats['end_to_end_ms_p99'] >= \
        stats['inference_ms_p50']


def test_latest_frame_slot_replaces_unprocessed_frames_and_counts_drops(tmp_path):
    cfg = tiny_config(tmp_path)
    clf = Classifier(cfg)
    gate = threading.Event()
    real_infer = clf.backend.infer

    def slow_infer(batch):
        gate.wait(5)
        return real_infer(batch)

    clf.backend.infer = slow_infer
    out = Collector()
    img = np.zeros((32, 32, 3), np.uint8)
    with WorkerPool(clf, 1, out.on_result, out.on_error, warmup=False) as pool:
        pool.submit('cam', lambda: Frame('bgr', img), 0)  # taken by the worker, blocks
        assert wait_for(lambda: pool.pending() == 0)
        for i in range(1, 11):  # 10 more while the worker is busy: only the last survives
            pool.submit('cam', lambda: Frame('bgr', img), i)
        # (converted ahead by then, or still raw: one frame waits either way)
        assert wait_for(lambda: pool.pending() == 1)
        gate.set()
        assert out.wait(2)
        stats = pool.stats()
    assert [r.meta for r in out.results] == [0, 10]
    assert stats['dropped'] == 9 and stats['received'] == 11 and stats['classified'] == 2


def test_one_worker_converts_the_next_frame_while_inferring(tmp_path):
    """The converter decodes and converts a waiting frame while the only worker infers;
    a converted frame replaced by a newer one is a counted drop; buffers stay bounded."""
    clf = Classifier(tiny_config(tmp_path))
    gate, entered = threading.Semaphore(0), threading.Semaphore(0)
    real_infer, buffers, threads = clf.backend.infer, set(), []

    def held_infer(batch):
        buffers.add(batch[0].__array_interface__['data'][0])
        entered.release()
        assert gate.acquire(timeout=5)
        return real_infer(batch)

    def make(i):
        def frame():
            threads.append((i, threading.current_thread().name))
            return Frame('bgr', np.full((48, 64, 3), i, np.uint8))
        return frame

    clf.backend.infer = held_infer
    out = Collector()
    with WorkerPool(clf, 1, out.on_result, out.on_error, warmup=False) as pool:
        pool.submit('cam', make(0), 0)
        assert entered.acquire(timeout=5)          # frame 0 is being inferred
        pool.submit('cam', make(1), 1)
        assert wait_for(lambda: pool.converted_ahead == 1)
        pool.submit('cam', make(2), 2)             # replaces converted frame 1: a drop
        assert wait_for(lambda: pool.converted_ahead == 2)
        gate.release()                             # 0 done; 2 is taken already converted
        assert entered.acquire(timeout=5)
        for i in range(3, 30):                     # a flood while 2 is inferred
            pool.submit('cam', make(i), i)
        assert wait_for(lambda: pool.pending() == 1)
        gate.release()
        assert entered.acquire(timeout=5)
        gate.release()
        assert out.wait(3)
        stats = pool.stats()
    assert [r.meta for r in out.results] == [0, 2, 29]
    assert stats['received'] == 30 and stats['classified'] == 3 and stats['dropped'] == 27
    assert dict(threads)[1] == 'edge_classifier-converter'
    assert len(buffers) <= 3, 'NV12 buffers must be reused, not allocated per frame'


def test_sources_take_turns_whatever_order_their_frames_arrive_in(tmp_path):
    """Four cameras at one rate into one busy worker: each gets the same share, even when
    one camera's frames always arrive first or last (four 30 Hz cameras into a node gave
    13 / 18 / 21 / 15 fps when the oldest frame went first)."""
    clf = Classifier(tiny_config(tmp_path))
    real_infer, turn = clf.backend.infer, threading.Semaphore(0)
    done = threading.Semaphore(0)

    def paced_infer(batch):
        assert turn.acquire(timeout=5)
        try:
            return real_infer(batch)
        finally:
            done.release()

    clf.backend.infer = paced_infer
    out = Collector()
    img = np.zeros((32, 32, 3), np.uint8)
    cams = ['a', 'b', 'c', 'd']
    with WorkerPool(clf, 1, out.on_result, out.on_error, warmup=False) as pool:
        for rnd in range(40):
            order = cams if rnd % 2 else cams[::-1]
            for cam in order:  # every camera delivers one frame per inference
                pool.submit(cam, lambda: Frame('bgr', img), cam)
            turn.release()
            assert done.acquire(timeout=5)
        turn.release(10)
        stats = pool.stats()
    per = {cam: stats['sources'][cam].classified for cam in cams}
    assert max(per.values()) - min(per.values()) <= 1, per


def test_at_a_camera_pace_the_last_idle_worker_takes_every_frame(tmp_path):
    """Frames one at a time into 3 workers: the worker that went idle last (warm) takes the
    next one, so sparse frames do not rotate over cold threads; a burst uses them all."""
    clf = Classifier(tiny_config(tmp_path))
    out, names = Collector(), []
    img = np.zeros((48, 64, 3), np.uint8)

    def on_result(result):
        names.append(threading.current_thread().name)
        out.on_result(result)

    with WorkerPool(clf, 3, on_result, out.on_error) as pool:
        assert wait_for(lambda: pool.idle_workers == 3)  # all warmed up
        for i in range(12):
            pool.submit('cam', lambda: Frame('bgr', img), i)
            assert out.wait(i + 1)
        assert len(set(names)) == 1, names
        gate, started = threading.Event(), threading.Semaphore(0)
        real_infer = clf.backend.infer

        def held_infer(batch):
            started.release()
            gate.wait(5)
            return real_infer(batch)

        clf.backend.infer = held_infer
        for i in range(3):  # three sources at once: every worker gets one
            pool.submit(f'cam{i}', lambda: Frame('bgr', img), i)
        assert all(started.acquire(timeout=5) for _ in range(3))
        gate.set()
        assert out.wait(15)
    assert len(set(names[12:])) == 3, names[12:]


def test_malformed_frames_and_backend_failures_are_counted_and_workers_go_on(tmp_path):
    clf = Classifier(tiny_config(tmp_path))
    out = Collector()
    good = np.zeros((32, 32, 3), np.uint8)
    fail = {'left': 3}
    real_infer = clf.backend.infer

    def flaky(batch):
        if fail['left']:
            fail['left'] -= 1
            raise RuntimeError('BPU timeout')
        return real_infer(batch)

    clf.backend.infer = flaky

    def bad():
        raise FrameError('data has 3 bytes')

    with WorkerPool(clf, 2, out.on_result, out.on_error, warmup=False) as pool:
        pool.submit('cam', bad, 'bad')
        assert out.wait(1)
        for i in range(3):
            pool.submit(f'cam{i}', lambda: Frame('bgr', good), i)
            assert out.wait(2 + i)
        assert pool.stats()['consecutive_errors'] == 3
        pool.submit('cam', lambda: Frame('bgr', good), 'ok')
        assert out.wait(5)
        stats = pool.stats()
    assert ('cam', 'malformed', 'data has 3 bytes') in out.errors
    assert sum(1 for e in out.errors if e[1] == 'error') == 3
    assert [r.meta for r in out.results] == ['ok']
    assert stats['malformed'] == 1 and stats['errors'] == 3 and stats['consecutive_errors'] == 0
    assert stats['sources']['cam'].last_error == 'data has 3 bytes'


def test_stop_joins_workers_quickly(tmp_path):
    pool = WorkerPool(Classifier(tiny_config(tmp_path)), 4).start()
    t0 = time.monotonic()
    assert pool.stop(timeout=2)
    assert time.monotonic() - t0 < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith('edge_classifier-worker')]


def test_labels_mismatch_fails_at_startup(tmp_path):
    cfg = tiny_config(tmp_path)
    (tmp_path / 'labels.txt').write_text('only\none\n')
    with pytest.raises(Exception, match='labels.txt has 2 names'):
        Classifier(cfg)


def test_the_classifier_applies_its_class_filter_and_box_options(tmp_path):
    """classes / class_thresholds given to the Classifier (as the node does at startup) and
    changed with settings_for (at run time); its box options are the ones it was given."""
    from edge_classifier.boxes import BoxOptions
    from edge_classifier.errors import ConfigError
    cfg = tiny_config(tmp_path, top_k=10)
    frame = Frame('bgr', np.full((32, 32, 3), (30, 120, 220), np.uint8))
    with_all = Classifier(cfg)
    everything = with_all.classify(frame)
    ranked = [h.class_id for h in everything]
    assert len(ranked) == 10 and with_all.box_options == BoxOptions()
    options = BoxOptions(1.5, True, 4, 3)
    only = Classifier(cfg, box_options=options, classes=[ranked[-1], 'class ' + ranked[-2]])
    assert only.box_options is options
    assert [h.class_id for h in only.classify(frame)] == [ranked[-2], ranked[-1]]
    top_score = everything[0].score
    strict = Classifier(cfg, class_thresholds=[f'{ranked[0]}:{min(1.0, top_score + 0.01)}'])
    assert [h.class_id for h in strict.classify(frame)] == ranked[1:]
    with pytest.raises(ConfigError, match="class 'class 99' is not in the labels"):
        Classifier(cfg, classes=['class 99'])
    settings = with_all.settings_for(cfg.replace(top_k=2), [], [f'{ranked[1]}:1.0'])
    assert settings.top_k == 2 and settings.class_filter is not None
    with_all.settings = settings
    assert [h.class_id for h in with_all.classify(frame)] == [ranked[0], ranked[2]]
    assert with_all.settings_for(cfg).class_filter is None
    for clf in (with_all, only, strict):
        clf.close()
