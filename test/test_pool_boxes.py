"""Frames with a detector's boxes in the worker pool (ROS-free, a real tiny ONNX model):
one top-k per box in the detections' order, skipped boxes counted and left empty, the
pool's promises (order, books, no silent death) unchanged when boxes and whole frames mix."""
import random
import threading
import time

import numpy as np
import pytest

from edge_classifier.frames import Frame
from edge_classifier.pipeline import Classifier
from edge_classifier.pool import OUTCOMES, WorkerPool

from helpers import Log, tiny_config, wait_for

IMG = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)


BOXES = np.array([(40, 30, 60, 50), (120, 90, 40, 40), (np.nan, 1, 1, 1), (80, 60, 2, 2)])


@pytest.fixture
def clf(tmp_path):
    classifier = Classifier(tiny_config(tmp_path, size=32))
    yield classifier
    classifier.close()


def frame():
    return Frame('bgr', IMG)


def test_each_box_gets_its_own_top_k_and_skipped_boxes_stay_empty(clf):
    results = []
    with WorkerPool(clf, 2, results.append, warmup=False) as pool:
        pool.submit('cam', frame, 'header', boxes=lambda: BOXES)
        assert wait_for(lambda: results)
        stats = pool.stats()
    result = results[0]
    assert result.hypotheses == [] and len(result.boxes) == 4
    assert result.boxes[2] is None and result.boxes[3] is None   # invalid, small
    expected, plan = clf.classify_boxes(Frame('bgr', IMG), BOXES)
    assert result.boxes == expected and result.plan.rects == plan.rects
    assert result.inferences == 2
    assert stats['boxes'] == 2 and stats['boxes_skipped'] == 2 and stats['classified'] == 1


def test_the_rate_budget_applies_to_frames_with_their_boxes(clf):
    """max_rate with a detector's boxes: a throttled frame's boxes are never read or
    inferred; the frames taken in get every box classified."""
    now, read, results = [0.0], [], []

    def boxes(i):
        read.append(i)
        return BOXES

    with WorkerPool(clf, 2, results.append, clock=lambda: now[0], warmup=False,
                    max_rate=2.0) as pool:
        for i in range(30):                               # 1 s of a 30 Hz camera
            now[0] = i / 30
            pool.submit('cam', frame, i, boxes=lambda i=i: boxes(i))
            assert wait_for(lambda: pool.stats()['in_flight'] == 0, 10)
        stats = pool.stats()
    assert [r.meta for r in results] == read == [0, 15]
    assert stats['throttled'] == 28 and stats['classified'] == 2 and stats['boxes'] == 4


def test_boxes_that_cannot_be_read_make_the_frame_malformed_not_the_thread_die(clf):
    errors, results, log = [], [], Log()

    def broken():
        raise ValueError('boxes must be (N, 4)')

    with WorkerPool(clf, 1, results.append, on_error=lambda *e: errors.append(e),
                    logger=log, warmup=False) as pool:
        pool.submit('cam', frame, 1, boxes=broken)
        assert wait_for(lambda: errors)
        pool.submit('cam', frame, 2, boxes=lambda: BOXES)
        assert wait_for(lambda: results)
        stats = pool.stats()
    assert errors[0][:2] == ('cam', 'malformed') and 'boxes must be' in str(errors[0][2])
    assert stats['malformed'] == 1 and stats['classified'] == 1 and stats['live_workers'] == 1


def test_boxes_and_whole_frames_mixed_keep_order_and_books(clf):
    """Two sources, one with boxes (0 to 40 per frame), one whole frames, random delays:
    each source's results strictly in order, books balanced while running and exact after."""
    rng = random.Random(3)
    lock = threading.Lock()
    real_infer = clf.backend.infer

    def slow(batch):
        with lock:
            delay = rng.random() * 0.002
        time.sleep(delay)
        return real_infer(batch)

    clf.backend.infer = slow
    published = {'det': [], 'whole': []}
    boxes_published = [0]

    def on_result(result):
        published[result.source].append(result.meta)
        if result.boxes is not None:
            boxes_published[0] += len(result.plan.kept)
        return True

    unbalanced = []
    pool = WorkerPool(clf, 3, on_result, warmup=False).start()
    for i in range(300):
        n = i % 41
        boxes = np.column_stack([np.full(n, 80.0), np.full(n, 60.0), np.full(n, 50.0),
                                 np.full(n, 40.0)])
        pool.submit('det', frame, i, boxes=lambda b=boxes: b)
        pool.submit('whole', frame, i)
        s = pool.stats()
        if not all(st.balanced() for st in s['sources'].values()):
            unbalanced.append(s)
        time.sleep(0.001)
    pool.stop()
    stats = pool.stats()
    assert not unbalanced
    for source, metas in published.items():
        assert metas == sorted(metas) and len(set(metas)) == len(metas), source
    per = stats['sources']
    for source in ('det', 'whole'):
        st = per[source]
        assert st.in_flight == 0 and st.received == 300
        assert st.received == sum(getattr(st, k) for k in OUTCOMES)
        assert st.classified == len(published[source])
    assert per['det'].boxes == boxes_published[0]
    assert per['whole'].boxes == 0 and per['whole'].boxes_skipped == 0


def test_the_boxes_of_one_frame_fan_out_to_idle_workers(clf):
    """One camera, a frame of 8 boxes, 4 workers: the boxes run on several threads and the
    result still has each box's own scores in the detections' order."""
    threads, lock = [], threading.Lock()
    real_infer = clf.backend.infer

    def slow(batch):
        with lock:
            threads.append(threading.current_thread().name)
        time.sleep(0.02)
        return real_infer(batch)

    boxes = np.array([(10 + 20 * i, 60, 16, 16 + 4 * i) for i in range(8)], float)
    results = []
    with WorkerPool(clf, 4, results.append, warmup=False) as pool:
        assert wait_for(lambda: pool.idle_workers == 4)
        clf.backend.infer = slow
        pool.submit('cam', frame, 1, boxes=lambda: boxes)
        assert wait_for(lambda: results, timeout=10)
    clf.backend.infer = real_infer
    assert len(set(threads)) >= 2, threads
    assert len(threads) == 8
    expected, _ = clf.classify_boxes(Frame('bgr', IMG), boxes)
    assert results[0].boxes == expected
    assert results[0].inferences == 8


def test_a_failing_box_fails_its_frame_counted_and_nothing_hangs(clf):
    calls, errors, results = [0], [], []
    real_infer = clf.backend.infer
    lock = threading.Lock()

    def third_fails(batch):
        with lock:
            calls[0] += 1
            n = calls[0]
        time.sleep(0.005)
        if n == 3:
            raise RuntimeError('BPU timeout')
        return real_infer(batch)

    clf.backend.infer = third_fails
    boxes = np.array([(40, 60, 30, 30)] * 6, float)
    with WorkerPool(clf, 3, results.append, on_error=lambda *e: errors.append(e),
                    warmup=False) as pool:
        pool.submit('cam', frame, 1, boxes=lambda: boxes)
        assert wait_for(lambda: errors, timeout=10)
        pool.submit('cam', frame, 2, boxes=lambda: boxes)
        assert wait_for(lambda: results, timeout=10)
        stats = pool.stats()
    assert errors[0][1] == 'error' and 'BPU timeout' in str(errors[0][2])
    assert stats['errors'] == 1 and stats['classified'] == 1 and stats['in_flight'] == 0
    assert results[0].meta == 2 and all(b is not None for b in results[0].boxes)


def test_stop_during_a_fan_out_settles_the_frame(clf):
    real_infer = clf.backend.infer

    def slow(batch):
        time.sleep(0.01)
        return real_infer(batch)

    clf.backend.infer = slow
    boxes = np.array([(40, 60, 30, 30)] * 40, float)
    pool = WorkerPool(clf, 3, warmup=False).start()
    pool.submit('cam', frame, 1, boxes=lambda: boxes)
    assert wait_for(lambda: pool.pending() == 0)
    assert pool.stop(timeout=5.0)
    stats = pool.stats()
    assert stats['in_flight'] == 0 and stats['received'] == 1
    assert stats['classified'] + stats['dropped'] == 1
