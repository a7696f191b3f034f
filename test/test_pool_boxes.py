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

from helpers import Log, tiny_config, wait_until

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
        assert wait_until(lambda: results)
        stats = pool.stats()
    result = results[0]
    assert result.hypotheses == [] and len(result.boxes) == 4
    assert result.boxes[2] is None and result.boxes[3] is None   # invalid, small
    expected, plan = clf.classify_boxes(Frame('bgr', IMG), BOXES)
    assert result.boxes == expected and result.plan.rects == plan.rects
    assert result.inferences == 2
    assert stats['boxes'] == 2 and stats['boxes_skipped'] == 2 and stats['classified'] == 1


def test_boxes_that_cannot_be_read_make_the_frame_malformed_not_the_thread_die(clf):
    errors, results, log = [], [], Log()

    def broken():
        raise ValueError('boxes must be (N, 4)')

    with WorkerPool(clf, 1, results.append, on_error=lambda *e: errors.append(e),
                    logger=log, warmup=False) as pool:
        pool.submit('cam', frame, 1, boxes=broken)
        assert wait_until(lambda: errors)
        pool.submit('cam', frame, 2, boxes=lambda: BOXES)
        assert wait_until(lambda: results)
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
