"""The ROS-free core: config -> frame -> NV12 -> backend -> top-k, and the worker pool.

Classifier runs one frame synchronously (the CLI, tests, benchmarks). WorkerPool runs N
worker threads over one latest-frame slot per source: a new frame replaces one that no
worker has taken yet (counted as a drop), so a slow model never builds a queue.
"""
import collections
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np

from .backends import create_backend
from .frames import FrameError
from .nv12 import Geometry, nv12_size, to_nv12
from .postprocess import Hypothesis, load_labels, top_k

log = logging.getLogger('edge_classifier')


@dataclass(frozen=True)
class Settings:
    """What may change at run time, swapped as one object: a frame sees all of it or none."""
    top_k: int
    score_threshold: float

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.top_k, cfg.score_threshold)


class Classifier:
    """One model, loaded once; thread-safe. The frame path, in three stages that the CLI,
    the worker pool and the benchmarks all use: convert (frame -> NV12 at the model's
    input size), infer (NV12 -> scores, on whichever backend), postprocess (top-k)."""

    def __init__(self, cfg, backend=None):
        self.cfg = cfg
        self.geometry = Geometry.from_config(cfg)
        self.backend = create_backend(cfg, backend).load()
        try:
            self.labels = (load_labels(cfg.resolve(cfg.labels_path), cfg.num_classes)
                           if cfg.labels_path else None)
        except Exception:
            self.backend.close()
            raise
        self.settings = Settings.from_config(cfg)
        self._local = threading.local()

    @property
    def untrained(self):
        return self.backend.untrained

    def nv12_buffer(self):
        """A new buffer for one NV12 frame of the model's input size."""
        return np.empty(nv12_size(self.geometry.width, self.geometry.height), np.uint8)

    def convert(self, frame, out=None):
        """Stage 1: a Frame cropped/resized to the model input, as NV12 bytes (into out)."""
        return to_nv12(frame, self.geometry, out=out)

    def infer(self, nv12):
        """Stage 2: the backend on one NV12 buffer (the board's input format): scores."""
        return self.backend.infer([nv12])[0]

    def postprocess(self, scores, k=None, threshold=None):
        """Stage 3: softmax (if the config asks) and top-k above the score threshold."""
        settings = self.settings  # read once: a concurrent update is never half-applied
        return top_k(scores, settings.top_k if k is None else k,
                     settings.score_threshold if threshold is None else threshold,
                     self.labels, self.cfg.softmax)

    def classify(self, frame):
        """Frame -> NV12 -> backend -> top-k, synchronously (this thread's buffer)."""
        buf = getattr(self._local, 'nv12', None)
        if buf is None:
            buf = self._local.nv12 = self.nv12_buffer()
        return self.postprocess(self.infer(self.convert(frame, out=buf)))

    def close(self):
        self.backend.close()


@dataclass
class Result:
    source: str
    meta: Any                       # what the producer attached (the ROS header)
    hypotheses: List[Hypothesis]
    t_received: float               # time.monotonic() when the frame was submitted
    inference_s: float
    end_to_end_s: float             # submit -> result, before on_result runs
    frame: Any = None               # the decoded Frame (views of the message, not a copy)


class _Window:
    """Recent samples for percentiles (bounded memory)."""

    def __init__(self, size=2000):
        self.values = collections.deque(maxlen=size)

    def add(self, value):
        self.values.append(value)

    def percentiles(self, *qs):
        if not self.values:
            return [float('nan')] * len(qs)
        data = np.fromiter(self.values, float)
        return [float(np.percentile(data, q)) for q in qs]


@dataclass
class SourceStats:
    received: int = 0
    classified: int = 0
    dropped: int = 0
    malformed: int = 0
    errors: int = 0
    last_error: str = ''


@dataclass
class _Slot:
    """A source's newest frame not yet taken: `raw` (as submitted) and/or `ready` (already
    converted to NV12 by the converter, older than `raw` when both are set). Sources take
    turns: the one served longest ago goes first."""
    raw: Optional[tuple] = None        # (seq, make_frame, meta, t_in)
    ready: Optional[tuple] = None      # (seq, frame, nv12, meta, t_in)
    served: int = 0                    # when a worker last took this source (a counter)


class WorkerPool:
    """N inference workers over latest-frame slots, one per source, and one converter.

    submit(source, make_frame, meta): make_frame() is called off the caller's thread and
    returns a Frame (decoding happens there); a FrameError it raises counts the frame as
    malformed. A worker takes a frame of the source served longest ago (sources take turns,
    whatever their rates or the order their frames arrive in), converts it if the converter
    has not, infers and post-processes it. While every worker is busy the converter converts
    ahead the waiting frame whose turn comes next, so conversion overlaps inference
    (with one worker too); a converted frame that a newer one replaces before a worker takes
    it is a counted drop, like a replaced raw one. At most one raw and one converted frame
    wait per source: memory is bounded whatever the input rate. A new frame wakes the worker
    that went idle last, so at a camera's pace one warm worker does every frame.

    on_result(Result) is called from the worker thread; on_error(source, kind, exception)
    for malformed frames ('malformed') and backend failures ('error'). Failures of those
    callbacks and of the warm-up go to `logger` (anything with error(str): the node passes
    its ROS logger, so they reach /rosout).
    """

    def __init__(self, classifier, workers=None, on_result=None, on_error=None,
                 clock=time.monotonic, warmup=True, logger=None):
        self.classifier = classifier
        self.log = logger or log
        self.workers = workers or classifier.cfg.workers
        self.on_result = on_result or (lambda result: None)
        self.on_error = on_error or (lambda source, kind, exc: None)
        self.clock = clock
        self.warmup = warmup
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # the converter's, and stop()
        self._slots = collections.OrderedDict()
        self._seq = 0
        self._turn = 0                 # counts takes, for the sources' turns
        self._waiting = []             # idle workers' conditions, the last idle on top
        self._spare = []               # NV12 buffers for frames converted ahead
        self._running = False
        self._threads = []
        self._inference = _Window()
        self._end_to_end = _Window()
        self._done_times = collections.deque(maxlen=4000)
        self._in_times = collections.deque(maxlen=4000)
        self.sources = collections.defaultdict(SourceStats)
        self.consecutive_errors = 0
        self.started_at = None
        self.converted_ahead = 0

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self):
        with self._cond:
            if self._running:
                return self
            self._running = True
        self.started_at = self.clock()
        targets = [(self._work, f'edge_classifier-worker-{i}') for i in range(self.workers)]
        targets.append((self._convert_ahead, 'edge_classifier-converter'))
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout=2.0):
        with self._cond:
            self._running = False
            self._cond.notify_all()
            for wake in self._waiting:
                wake.notify()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        return not alive

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- producer side ------------------------------------------------------------------
    def submit(self, source, make_frame, meta=None):
        now = self.clock()
        with self._cond:
            stats = self.sources[source]
            stats.received += 1
            self._in_times.append(now)
            slot = self._slots.get(source)
            if slot is None:
                slot = self._slots[source] = _Slot()
            if slot.raw is not None:
                stats.dropped += 1
            self._seq += 1
            slot.raw = (self._seq, make_frame, meta, now)
            self._wake_worker()
            self._cond.notify_all()  # the converter

    @property
    def idle_workers(self):
        """Workers waiting for a frame (warmed up, if warm-up is on)."""
        with self._cond:
            return len(self._waiting)

    def pending(self):
        with self._cond:
            return sum((slot.raw is not None) + (slot.ready is not None)
                       for slot in self._slots.values())

    # ---- workers ------------------------------------------------------------------------
    def _next_source(self, ready_too=True):
        """The waiting source whose turn it is (served longest ago; then oldest frame)."""
        best = None
        for source, slot in self._slots.items():
            entry = (slot.ready if ready_too else None) or slot.raw
            if entry is not None:
                # the converter prefers sources with nothing converted yet
                key = (not ready_too and slot.ready is not None, slot.served, entry[0])
                if best is None or key < best[0]:
                    best = (key, source)
        return None if best is None else best[1]

    def _wake_worker(self):
        """A frame is waiting: wake the worker that became idle last (its thread, caches
        and the runtime's state for it are warm: at a camera's pace one worker does every
        frame, as fast as a single one). Called with the lock held."""
        if self._waiting:
            self._waiting[-1].notify()

    def _take(self, wake):
        """A frame of the source whose turn it is, converted or not; None when stopping.
        `wake`: this worker's condition (on the pool's lock).

        Returns (source, frame-or-make_frame, nv12-or-None, meta, t_in)."""
        with self._cond:
            self._waiting.append(wake)
            try:
                while self._running:
                    source = self._next_source()
                    if source is not None:
                        slot = self._slots[source]
                        self._turn += 1
                        slot.served = self._turn
                        entry = slot.ready or slot.raw
                        if entry is slot.ready:
                            slot.ready = None
                            _, frame, nv12, meta, t_in = entry
                            return source, frame, nv12, meta, t_in
                        slot.raw = None
                        _, make_frame, meta, t_in = entry
                        return source, make_frame, None, meta, t_in
                    wake.wait()
                return None
            finally:
                self._waiting.remove(wake)
                if self._next_source() is not None:
                    self._wake_worker()  # more frames wait: the next idle worker
                self._cond.notify_all()  # the converter watches the idle count

    def _decode_and_convert(self, source, make_frame, out):
        """make_frame() then the conversion into `out`: (frame, nv12), or None (counted)."""
        try:
            frame = make_frame()
            return frame, self.classifier.convert(frame, out=out)
        except FrameError as exc:
            self._count(source, 'malformed', exc)
        except Exception as exc:  # a conversion bug must not kill the thread
            self._count(source, 'malformed', FrameError(f'{type(exc).__name__}: {exc}'))
        return None

    def _work(self):
        clf = self.classifier
        own = clf.nv12_buffer()
        wake = threading.Condition(self._lock)
        if self.warmup:
            # One inference per thread before the first frame: the runtime's per-thread
            # state and this thread's buffers are set up now, not on a camera frame.
            try:
                clf.infer(np.full_like(own, 128))
            except Exception as exc:
                self.log.error(f'warm-up inference failed: {type(exc).__name__}: {exc}')
        while True:
            taken = self._take(wake)
            if taken is None:
                return
            source, frame, nv12, meta, t_in = taken
            spare = nv12
            if nv12 is None:  # not converted ahead: convert here
                converted = self._decode_and_convert(source, frame, own)
                if converted is None:
                    continue
                frame, nv12 = converted
            try:
                self._infer(source, frame, nv12, meta, t_in)
            finally:
                if spare is not None:
                    with self._cond:
                        self._spare.append(spare)

    def _infer(self, source, frame, nv12, meta, t_in):
        clf = self.classifier
        t0 = self.clock()
        try:
            scores = clf.infer(nv12)
        except Exception as exc:
            self._count(source, 'error', exc)
            return
        t1 = self.clock()
        hyps = clf.postprocess(scores)
        done = self.clock()
        result = Result(source, meta, hyps, t_in, t1 - t0, done - t_in, frame)
        with self._cond:
            self.sources[source].classified += 1
            self.consecutive_errors = 0
            self._inference.add(t1 - t0)
            self._end_to_end.add(done - t_in)
            self._done_times.append(done)
        try:
            self.on_result(result)
        except Exception:
            self.log.error(f'publishing the result of a frame from {source} failed:\n'
                           f'{traceback.format_exc()}')

    def _convert_ahead(self):
        """While no worker is idle, convert ahead the raw frame of the source whose turn
        comes next (the one a worker will take)."""
        while True:
            with self._cond:
                while True:
                    if not self._running:
                        return
                    source = (self._next_source(ready_too=False) if not self._waiting
                              else None)
                    if source is not None:
                        break
                    self._cond.wait()
                raw, self._slots[source].raw = self._slots[source].raw, None
                out = self._spare.pop() if self._spare else None
            seq, make_frame, meta, t_in = raw
            converted = self._decode_and_convert(
                source, make_frame, out if out is not None else self.classifier.nv12_buffer())
            with self._cond:
                if converted is None:
                    if out is not None:
                        self._spare.append(out)
                    continue
                frame, nv12 = converted
                slot = self._slots[source]
                if slot.ready is not None:  # an older converted frame nobody took
                    self.sources[source].dropped += 1
                    self._spare.append(slot.ready[2])
                slot.ready = (seq, frame, nv12, meta, t_in)
                self.converted_ahead += 1
                self._wake_worker()

    def _count(self, source, kind, exc):
        with self._cond:
            stats = self.sources[source]
            if kind == 'malformed':
                stats.malformed += 1
            else:
                stats.errors += 1
                self.consecutive_errors += 1
            stats.last_error = str(exc)
        try:
            self.on_error(source, kind, exc)
        except Exception:
            self.log.error(f'reporting a {kind} frame from {source} failed:\n'
                           f'{traceback.format_exc()}')

    # ---- stats --------------------------------------------------------------------------
    def stats(self, window_s=5.0):
        """Totals and recent rates: a snapshot for diagnostics and benchmarks."""
        now = self.clock()
        with self._cond:
            totals = SourceStats()
            for s in self.sources.values():
                for name in ('received', 'classified', 'dropped', 'malformed', 'errors'):
                    setattr(totals, name, getattr(totals, name) + getattr(s, name))
            inf50, inf99 = self._inference.percentiles(50, 99)
            e2e50, e2e99 = self._end_to_end.percentiles(50, 99)
            since = max(now - window_s, self.started_at or now)
            span = max(now - since, 1e-9)
            out_fps = sum(1 for t in self._done_times if t >= since) / span
            in_fps = sum(1 for t in self._in_times if t >= since) / span
            per_source = {k: SourceStats(**vars(v)) for k, v in self.sources.items()}
            consecutive = self.consecutive_errors
        return {
            'received': totals.received, 'classified': totals.classified,
            'dropped': totals.dropped, 'malformed': totals.malformed, 'errors': totals.errors,
            'consecutive_errors': consecutive,
            'input_fps': in_fps, 'classified_fps': out_fps,
            'inference_ms_p50': inf50 * 1e3, 'inference_ms_p99': inf99 * 1e3,
            'end_to_end_ms_p50': e2e50 * 1e3, 'end_to_end_ms_p99': e2e99 * 1e3,
            'sources': per_source, 'workers': self.workers,
        }
