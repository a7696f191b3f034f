"""The pool's promises, ROS-free, with a real (tiny) ONNX model: results of a source never
go back in time, every frame is counted at every moment, no thread dies silently, stop()
settles everything it can and says when it cannot; and the output gate."""
import random
import sys
import threading
import time

import numpy as np
import pytest

from edge_classifier.frames import Frame, FrameError
from edge_classifier.gate import OutputGate
from edge_classifier.overlay import OverlayWorker
from edge_classifier.pipeline import Classifier
from edge_classifier.pool import OUTCOMES, WorkerPool

from helpers import Log, tiny_config, wait_for

IMG = np.zeros((48, 64, 3), np.uint8)


def balanced(stats):
    return all(s.balanced() for s in stats['sources'].values()) and \
        stats['received'] == sum(stats[k] for k in OUTCOMES) + stats['in_flight']


@pytest.fixture
def clf(tmp_path):
    classifier = Classifier(tiny_config(tmp_path, size=32))
    yield classifier
    classifier.close()


@pytest.fixture
def busy_switching():
    """Thread switches every microsecond (not 5 ms): races show up within a test's time."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize('workers', [1, 2, 4])
def test_stress_order_per_source_and_exact_books(clf, workers, busy_switching):
    """3 sources, thousands of frames, random decode and inference delays, some results
    refused by a closed output: published order per source strictly increasing; the books
    balance at every moment stats() is read and exactly after stop() (in flight 0)."""
    rng_lock, rng = threading.Lock(), random.Random(workers)

    def jitter(scale):
        with rng_lock:
            value = rng.random()
        if value < 0.3:
            time.sleep(value * scale)

    real_infer = clf.backend.infer

    def slow_infer(batch):
        jitter(0.006)
        return real_infer(batch)

    clf.backend.infer = slow_infer
    published = {f'cam{i}': [] for i in range(3)}
    refused = []

    def on_result(result):
        jitter(0.001)
        if result.meta % 17 == 0:      # as a closed output gate answers
            refused.append(result.meta)
            return False
        published[result.source].append(result.meta)
        return True

    log, unbalanced, reads = Log(), [], [0]
    pool = WorkerPool(clf, workers, on_result, logger=log, warmup=False).start()
    stop_reading = threading.Event()

    def reader():
        while not stop_reading.is_set():
            stats = pool.stats()
            reads[0] += 1
            if not balanced(stats):
                unbalanced.append(stats)

    def camera(name, count):
        for i in range(1, count + 1):
            def make_frame(i=i):
                jitter(0.003)
                if i % 101 == 0:
                    raise FrameError('corrupt')
                return Frame('bgr', IMG)
            pool.submit(name, make_frame, i)
            time.sleep(rng.random() * 0.0015)

    threads = [threading.Thread(target=reader)] + \
        [threading.Thread(target=camera, args=(name, 1000)) for name in published]
    [t.start() for t in threads]
    [t.join() for t in threads[1:]]
    assert pool.stop(timeout=5)
    stop_reading.set()
    threads[0].join()
    stats = pool.stats()

    assert not unbalanced, unbalanced[0]
    assert reads[0] > 50
    for name, seqs in published.items():
        assert seqs == sorted(set(seqs)), f'{name} went back in time'
        assert len(seqs) > 20, (name, len(seqs))
    for name, s in stats['sources'].items():
        assert s.received == 1000 and s.in_flight == 0 and s.balanced(), (name, s)
        assert s.classified == len(published[name])
        assert s.malformed <= 9  # 101, 202, ... 909, when decoded (not replaced first)
    assert stats['dropped'] >= len(refused) > 0 and stats['malformed'] > 0
    assert stats['errors'] == 0 and not log.errors, log.errors


def test_a_frame_converted_late_is_dropped_not_published_after_a_newer_one(clf):
    """The reviewer's case: the only worker infers F0; the converter starts decoding F1;
    the worker finishes, F2 arrives and the worker takes it raw; F1's conversion ends.
    F1 is older than F2: dropped and counted, never published after it."""
    infer_gate, inferring = threading.Event(), threading.Semaphore(0)
    decode_gate, decoding = threading.Event(), threading.Event()
    real_infer, inferred = clf.backend.infer, []

    def held_infer(batch):
        inferred.append(int(batch[0][0]))
        inferring.release()
        assert infer_gate.wait(5)
        return real_infer(batch)

    def slow_decode():
        decoding.set()
        assert decode_gate.wait(5)
        return Frame('bgr', IMG)

    clf.backend.infer = held_infer
    order = []
    pool = WorkerPool(clf, 1, lambda r: order.append(r.meta), warmup=False).start()
    try:
        pool.submit('cam', lambda: Frame('bgr', IMG), 'F0')
        assert inferring.acquire(timeout=5)             # F0 in the worker
        pool.submit('cam', slow_decode, 'F1')
        assert decoding.wait(5)                         # the converter decodes F1
        infer_gate.set()                                # F0 done: the worker goes idle
        assert wait_for(lambda: pool.idle_workers == 1)
        pool.submit('cam', lambda: Frame('bgr', IMG), 'F2')
        assert wait_for(lambda: order == ['F0', 'F2'])
        decode_gate.set()                               # F1 converted, too late
        assert wait_for(lambda: pool.stats()['in_flight'] == 0)
        time.sleep(0.05)
    finally:
        infer_gate.set()
        decode_gate.set()
        pool.stop()
    stats = pool.stats()['sources']['cam']
    assert order == ['F0', 'F2']
    assert len(inferred) == 2, 'F1 must not even be inferred once F2 was taken'
    assert (stats.received, stats.classified, stats.dropped, stats.in_flight) == (3, 2, 1, 0)


def test_with_several_workers_a_result_that_finishes_first_waits_for_the_older_one(clf):
    """Two workers, one camera: F1 is slow, F2 finishes first. F2 waits (no thread waits
    with it) until F1 is out: both are published, in order; nothing is wasted."""
    real_infer, slow, f2_done = clf.backend.infer, threading.Event(), threading.Event()
    started = threading.Semaphore(0)

    def infer(batch):
        started.release()
        dark = batch[0][0] < 100   # F1 is a dark frame, F2 a light one
        if dark:
            assert slow.wait(5)
        scores = real_infer(batch)
        if not dark:
            f2_done.set()
        return scores

    clf.backend.infer = infer
    order = []
    pool = WorkerPool(clf, 2, lambda r: order.append(r.meta), warmup=False).start()
    try:
        assert wait_for(lambda: pool.idle_workers == 2)
        pool.submit('cam', lambda: Frame('gray', np.full((32, 32), 1, np.uint8)), 'F1')
        assert started.acquire(timeout=5)
        pool.submit('cam', lambda: Frame('gray', np.full((32, 32), 200, np.uint8)), 'F2')
        assert f2_done.wait(5)
        assert wait_for(lambda: pool.idle_workers == 1)   # F2's worker did not wait
        time.sleep(0.05)
        assert order == [] and pool.stats()['in_flight'] == 2
        slow.set()
        assert wait_for(lambda: order == ['F1', 'F2'])
        assert wait_for(lambda: pool.stats()['in_flight'] == 0)
    finally:
        slow.set()
        pool.stop()
    stats = pool.stats()['sources']['cam']
    assert (stats.classified, stats.dropped) == (2, 0)


def test_a_result_behind_a_failed_frame_is_published(clf):
    """F1 fails in the backend while F2, done first, waits behind it: F2 goes out."""
    real_infer, gate = clf.backend.infer, threading.Event()

    def infer(batch):
        if batch[0][0] < 100:
            assert gate.wait(5)
            raise RuntimeError('BPU timeout')
        return real_infer(batch)

    clf.backend.infer = infer
    order = []
    pool = WorkerPool(clf, 2, lambda r: order.append(r.meta), warmup=False).start()
    try:
        assert wait_for(lambda: pool.idle_workers == 2)
        pool.submit('cam', lambda: Frame('gray', np.full((32, 32), 1, np.uint8)), 'F1')
        assert wait_for(lambda: pool.idle_workers == 1)
        pool.submit('cam', lambda: Frame('gray', np.full((32, 32), 200, np.uint8)), 'F2')
        assert wait_for(lambda: pool.idle_workers == 1 and pool.pending() == 0)
        time.sleep(0.05)
        assert order == []
        gate.set()
        assert wait_for(lambda: order == ['F2'])
    finally:
        gate.set()
        pool.stop()
    stats = pool.stats()['sources']['cam']
    assert (stats.classified, stats.errors, stats.in_flight) == (1, 1, 0)


@pytest.mark.parametrize('where', ['postprocess', 'on_result', 'thread'])
def test_a_failure_anywhere_in_a_worker_is_logged_counted_and_the_worker_goes_on(clf, where):
    log = Log()
    results = []
    failures = {'left': 1}

    def fail_once():
        if failures['left']:
            failures['left'] -= 1
            raise RuntimeError(f'injected failure in {where}')

    def on_result(result):
        if where == 'on_result':
            fail_once()
        results.append(result.meta)

    pool = WorkerPool(clf, 2, on_result, logger=log, warmup=False)
    if where == 'postprocess':
        real = clf.postprocess

        def postprocess(scores):
            fail_once()
            return real(scores)
        clf.postprocess = postprocess
    elif where == 'thread':   # the worker's own loop, outside any frame (its buffer)
        real = clf.nv12_buffer

        def nv12_buffer():
            fail_once()
            return real()
        clf.nv12_buffer = nv12_buffer
    pool.start()
    try:
        assert wait_for(lambda: pool.idle_workers == 2)
        for i in range(4):
            pool.submit(f'cam{i}', lambda: Frame('bgr', IMG), i)
            assert wait_for(lambda: pool.stats()['in_flight'] == 0)
        stats = pool.stats()
    finally:
        pool.stop()
    assert stats['live_workers'] == 2 and stats['converter_alive']
    assert any(f'injected failure in {where}' in e and 'Traceback' in e for e in log.errors), \
        log.errors
    if where == 'thread':  # a bug in the pool itself: no frame involved, all four classified
        assert results == [0, 1, 2, 3] and stats['errors'] == 0
    else:
        assert results == [1, 2, 3] and stats['errors'] == 1
        assert stats['sources']['cam0'].errors == 1
        assert 'injected failure' in stats['sources']['cam0'].last_error
    assert balanced(stats) and stats['in_flight'] == 0


def test_max_rate_throttles_before_decode_and_the_books_count_it(clf):
    """A 30 Hz camera (a clock the test moves) at max_rate 5, two sources: 5 of every 30
    frames per source are decoded and classified, the rest counted throttled without
    being decoded; a run-time change to 10 Hz takes effect; the books balance."""
    now, decoded, published = [0.0], [], []

    def make_frame(source, i):
        decoded.append((source, i))
        return Frame('bgr', IMG)

    pool = WorkerPool(clf, 2, lambda r: published.append(r.meta) or True,
                      clock=lambda: now[0], warmup=False, max_rate=5.0).start()
    try:
        def camera(seconds, start):
            for i in range(int(seconds * 30)):
                now[0] = start + i / 30
                for source in ('a', 'b'):
                    pool.submit(source, lambda s=source, i=i: make_frame(s, i), (source, i))
                assert wait_for(lambda: pool.pending() == 0 and
                                pool.stats()['in_flight'] == 0, 10)

        camera(2.0, 0.0)
        stats = pool.stats()
        for source in ('a', 'b'):
            books = stats['sources'][source]
            assert books.received == 60 and books.classified == 10 and books.throttled == 50
            assert books.balanced()
        assert sorted(decoded) == sorted(published) and len(decoded) == 20
        assert [i for s, i in decoded if s == 'a'] == list(range(0, 60, 6))
        pool.max_rate = 10.0
        camera(2.0, 2.0)
        assert pool.stats()['sources']['a'].classified == 10 + 20
        assert balanced(pool.stats())
    finally:
        pool.stop()


def test_stop_drops_what_waits_and_keeps_the_books(clf):
    real_infer, gate = clf.backend.infer, threading.Event()
    entered = threading.Event()

    def held_infer(batch):
        entered.set()
        gate.wait(5)
        return real_infer(batch)

    clf.backend.infer = held_infer
    pool = WorkerPool(clf, 1, warmup=False).start()
    pool.submit('a', lambda: Frame('bgr', IMG), 0)
    assert entered.wait(5)
    for i in range(1, 4):
        pool.submit('a', lambda: Frame('bgr', IMG), i)
        pool.submit('b', lambda: Frame('bgr', IMG), i)
    assert wait_for(lambda: pool.pending() >= 2)
    threading.Timer(0.1, gate.set).start()
    assert pool.stop(timeout=3)
    stats = pool.stats()
    assert stats['received'] == 7 and stats['in_flight'] == 0 and balanced(stats)
    assert stats['classified'] == 1 and stats['dropped'] == 6
    pool.submit('a', lambda: Frame('bgr', IMG), 99)    # after stop: counted, dropped
    assert pool.stats()['dropped'] == 7 and balanced(pool.stats())


def test_stop_says_when_a_worker_is_stuck_in_the_backend(clf):
    real_infer, gate, entered = clf.backend.infer, threading.Event(), threading.Event()

    def stuck_infer(batch):
        entered.set()
        gate.wait(10)
        return real_infer(batch)

    clf.backend.infer = stuck_infer
    log = Log()
    pool = WorkerPool(clf, 1, logger=log, warmup=False).start()
    pool.submit('a', lambda: Frame('bgr', IMG), 0)
    assert entered.wait(5)
    assert pool.stop(timeout=0.2) is False
    assert any('edge_classifier-worker-0 did not stop' in e for e in log.errors), log.errors
    stats = pool.stats()
    assert stats['in_flight'] == 1 and balanced(stats)
    gate.set()
    assert wait_for(lambda: pool.stats()['in_flight'] == 0)
    assert balanced(pool.stats())


def test_the_gate_lets_nothing_through_once_close_returns():
    gate = OutputGate(is_open=True)
    inside, release = threading.Event(), threading.Event()
    events = []

    def slow_publish():
        inside.set()
        release.wait(5)
        events.append(('published', time.monotonic()))
        return True

    t = threading.Thread(target=gate.run, args=(slow_publish,))
    t.start()
    assert inside.wait(5)
    closer = threading.Thread(target=lambda: events.append(('closed', gate.close(),
                                                            time.monotonic())))
    closer.start()
    time.sleep(0.05)
    assert not [e for e in events if e[0] == 'closed'], 'close() must wait for the publish'
    release.set()
    closer.join(5)
    t.join(5)
    (_, published_at), (_, drained, closed_at) = events
    assert drained and published_at <= closed_at
    assert gate.run(lambda: events.append('late')) is False and 'late' not in events
    gate.open()
    assert gate.run(lambda: 'value') == 'value'


def test_the_gate_under_many_publishing_threads():
    gate, stop = OutputGate(is_open=True), threading.Event()
    times, lock = [], threading.Lock()

    def publisher():
        while not stop.is_set():
            def publish():
                time.sleep(0.0002)
                with lock:
                    times.append(time.monotonic())
            gate.run(publish)

    threads = [threading.Thread(target=publisher) for _ in range(8)]
    [t.start() for t in threads]
    time.sleep(0.05)
    assert gate.close(timeout=2)
    closed_at = time.monotonic()
    time.sleep(0.05)
    stop.set()
    [t.join() for t in threads]
    assert times and max(times) <= closed_at


def test_overlay_worker_slots_per_source_discard_and_a_failure_does_not_end_it():
    log = Log()
    worker = OverlayWorker('title', 0, log)
    published, hold = [], threading.Event()

    def publish(bgr, meta):
        if meta == 'boom':
            raise RuntimeError('publish failed')
        hold.wait(5)
        published.append(meta)
        return True

    try:
        worker.submit('a', Frame('bgr', IMG), [], 'boom', publish)
        assert wait_for(lambda: log.errors)
        worker.submit('a', Frame('bgr', IMG), [], 'a1', publish)   # being drawn, held
        assert wait_for(lambda: not worker._jobs)
        worker.submit('a', Frame('bgr', IMG), [], 'a2', publish)
        worker.submit('b', Frame('bgr', IMG), [], 'b1', publish)
        worker.submit('a', Frame('bgr', IMG), [], 'a3', publish)   # replaces a2, keeps a's place
        hold.set()
        assert wait_for(lambda: len(published) == 3)
        assert published == ['a1', 'a3', 'b1'] and worker.dropped == 1 and worker.alive()
        hold.clear()
        worker.submit('a', Frame('bgr', IMG), [], 'a4', publish)   # being drawn
        assert wait_for(lambda: not worker._jobs)
        worker.submit('b', Frame('bgr', IMG), [], 'b2', publish)
        worker.discard()
        hold.set()
        assert wait_for(lambda: len(published) == 4)
        time.sleep(0.05)
        assert published[-1] == 'a4' and worker.dropped == 2
        assert 'Traceback' in log.errors[0] and 'publish failed' in log.errors[0]
    finally:
        hold.set()
        assert worker.stop()


def test_at_a_cameras_pace_the_converter_is_not_woken(clf):
    """A frame that finds a worker idle goes to that worker: the converter has nothing to
    do and is not woken (it was, twice a frame, taking the lock and the GIL from the
    worker as its inference started). Once no worker is idle, a waiting frame wakes it."""
    wakes, results, release = [], [], threading.Event()
    pool = WorkerPool(clf, 2, lambda r: results.append(r.meta), warmup=False)
    notify = pool._converter_wake.notify
    pool._converter_wake.notify = lambda *a: (wakes.append(a), notify(*a))
    pool.start()
    try:
        assert wait_for(lambda: pool.idle_workers == 2)
        for i in range(10):   # one at a time, as a camera whose frames take less than its period
            pool.submit('cam', lambda: Frame('bgr', IMG), i)
            assert wait_for(lambda: len(results) == i + 1 and pool.idle_workers == 2)
        assert wakes == [] and pool.converted_ahead == 0
        real_infer = clf.backend.infer
        clf.backend.infer = lambda batch: (release.wait(5), real_infer(batch))[1]
        for i in range(10, 13):   # two workers held: the third frame waits, converted ahead
            pool.submit('cam', lambda: Frame('bgr', IMG), i)
            assert wait_for(lambda: pool.idle_workers == max(0, 1 - (i - 10)))
        assert wait_for(lambda: pool.converted_ahead == 1) and wakes
        release.set()
        assert wait_for(lambda: results[-1] == 12 and pool.stats()['in_flight'] == 0)
    finally:
        release.set()
        pool.stop()
