"""The worker pool: frames from any number of sources, N inference threads, one converter.

    pool = WorkerPool(classifier, workers, on_result=publish, on_error=report).start()
    pool.submit(source, make_frame, meta)                    # stores the frame, returns
    pool.submit(source, make_frame, meta, boxes=get_boxes)   # a detector's boxes instead
    ...
    pool.stop()                      # joins the threads, settles what was waiting

make_frame() runs off the caller's thread and returns a Frame (the decode happens there);
a FrameError it raises counts the frame as malformed. With `boxes` (a callable returning
(N, 4) centre x, centre y, width, height), the frame's boxes are classified instead of the
whole frame (Classifier.convert_boxes: crops through the same NV12 path); a frame with
boxes is one frame in every rule below, and its Result carries a top-k per box.

on_result(Result) runs on a pool thread, one result of a source at a time, in the order of
the frames; it returns False when it did not deliver the result (an output gate closed by
a deactivate): the frame then counts as dropped, not classified. on_error(source, kind,
exception) reports 'malformed' frames and failed inferences ('error'). Failures of either
callback, and of the pool itself, go to `logger` (error(str): the node passes its ROS
logger, so they reach /rosout).

Each rule has one home, a part in pool_parts.py (pure: unit-tested without threads), and
all of them live under the pool's one lock:

  a rate budget        RateBudget, one per source: at most max_rate frames a second are
                       taken in (decided in submit, before decode); the others are
                       counted throttled
  newest wins          Slots.put, Slots.converted: one frame waits per source (and one
                       converted ahead); a newer one replaces it, counted dropped
  sources take turns   Slots.take: the source served longest ago goes first, whatever the
                       sources' rates or the order their frames arrive in
  warm worker first    IdleWorkers: a LIFO; the worker that went idle last takes the next
                       frame (at a camera's pace one warm thread does every frame)
  convert ahead        the converter thread: while no worker is idle, it converts the
                       frame whose turn comes next (Slots.next_to_convert) into one of a
                       few reused buffers (Buffers)
  in order, never      Order, one per source (pure, no threads): a result leaves once no
  back in time         older frame of its source is held by a worker, in frame order, and
                       one thread at a time publishes a source's results
  every frame counted  Books.settle: per source, received = classified + dropped +
                       malformed + errors + throttled + in_flight, each frame settled once
  no silent death      WorkerPool._guarded: an exception that escapes a thread's loop (a
                       bug in the pool) is logged with its traceback; the loop goes on

A worker's loop is `task = take(); task.run()`: a task is a frame (decode, convert, infer,
post-process) or one box of a frame with boxes. The worker that takes a frame with boxes
converts its crops and infers its boxes one by one while idle workers take the others as
tasks; whoever finishes the last box finishes the frame: no thread waits for another.
"""
import collections
import logging
import threading
import time
import traceback
from dataclasses import dataclass, fields
from typing import Any, List, Optional

import numpy as np

from .errors import FrameError
from .pool_parts import OUTCOMES, Books, Buffers, IdleWorkers, SourceStats, Slots, _Source
from .postprocess import Hypothesis

__all__ = ['OUTCOMES', 'Result', 'SourceStats', 'WorkerPool']

log = logging.getLogger('edge_classifier')


@dataclass
class Result:
    source: str
    meta: Any                       # what the producer attached (the ROS header)
    hypotheses: List[Hypothesis]
    t_received: float               # clock() when the frame was submitted
    inference_s: float
    end_to_end_s: float             # submit -> result, before on_result runs
    frame: Any = None               # the decoded Frame (views of the message, not a copy)
    seq: int = 0                    # the pool's arrival number of the frame
    detections: Any = None          # a frame with boxes: what was submitted as `boxes`
    boxes: Optional[List[Optional[List[Hypothesis]]]] = None   # per box its top-k (None:
    plan: Any = None                # skipped) and the BoxPlan (boxes.py): where each was cut
    inferences: int = 1             # backend calls this frame took
    convert_s: float = 0.0          # decode + conversion to NV12 (all crops, with boxes)
    t_inferred: float = 0.0         # clock() when its (last) inference ended


# ---- the tasks ------------------------------------------------------------------------------
@dataclass(eq=False)
class _Job:
    """A frame on its way, from submit() to one of the OUTCOMES (settled once)."""
    source: _Source
    seq: int
    make_frame: Any
    meta: Any
    t_in: float
    boxes: Any = None             # callable -> (N, 4) boxes, or None: the whole frame
    frame: Any = None
    nv12: Any = None              # its NV12; with boxes, a list of one buffer per kept box
    plan: Any = None
    buffer: Any = None            # the Buffers buffer it holds (converted ahead)
    convert_s: float = 0.0        # decode + conversion
    settled: bool = False

    def run(self, pool, own):
        pool._run_frame(self, own)


class _Fan:
    """The boxes of one frame: box tasks any worker takes (the pool's lock guards it)."""

    def __init__(self, job):
        count = len(job.nv12)
        self.job = job
        self.next = 0
        self.left = count                # boxes not finished yet
        self.scores = [None] * count
        self.seconds = [0.0] * count     # each box's backend call
        self.failure = None

    def claim(self):
        """The next box to infer, or None when every box is handed out."""
        if self.next >= len(self.scores):
            return None
        self.next += 1
        return _BoxTask(self, self.next - 1)


@dataclass(eq=False)
class _BoxTask:
    fan: _Fan
    index: int

    def run(self, pool, own):
        pool._run_box(self.fan, self.index)


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


# ---- the pool -------------------------------------------------------------------------------
class WorkerPool:
    """N inference workers and one converter over latest-frame slots, one per source.

    Memory is bounded whatever the input rate: at most one raw and one converted frame
    wait per source, and the converted ones reuse a few buffers.
    """

    def __init__(self, classifier, workers=None, on_result=None, on_error=None,
                 clock=time.monotonic, warmup=True, logger=None, convert_ahead=True,
                 max_rate=0.0):
        self.classifier = classifier
        self.log = logger or log
        self.workers = workers or classifier.cfg.workers
        self.on_result = on_result or (lambda result: True)
        self.on_error = on_error or (lambda source, kind, exc: None)
        self.clock = clock
        self.warmup = warmup
        self.convert_ahead = convert_ahead   # off: no converter thread (the bench measures it)
        self.max_rate = max_rate             # frames a second per source; 0 = all (run time)
        self._lock = threading.Lock()     # the one lock: every part below
        self._converter_wake = threading.Condition(self._lock)
        self._slots = Slots()
        self._idle = IdleWorkers()
        self._books = Books(Buffers(classifier.nv12_buffer))
        self._fans = collections.deque()  # frames whose boxes are not all handed out
        self._seq = 0
        self._running = False
        self._threads = []
        self._inference = _Window()
        self._convert = _Window()         # decode + convert, per frame
        self._publish_time = _Window()    # post-process + publish, per frame
        self._end_to_end = _Window()
        self._done_times = collections.deque(maxlen=4000)
        self._in_times = collections.deque(maxlen=4000)
        self._box_times = collections.deque(maxlen=4000)   # (time, boxes) per frame
        self.started_at = None
        self.converted_ahead = 0

    @property
    def consecutive_errors(self):
        return self._books.consecutive_errors

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self):
        with self._lock:
            if self._running:
                return self
            self._running = True
        self.started_at = self.clock()
        targets = [(self._work, f'edge_classifier-worker-{i}') for i in range(self.workers)]
        if self.convert_ahead:
            targets.append((self._convert_ahead, 'edge_classifier-converter'))
        for target, name in targets:
            thread = threading.Thread(target=self._guarded, args=(target,), name=name,
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout=2.0):
        """Stop and join the threads; frames still waiting count as dropped. Returns False
        (and logs which) when a thread did not end in time: it is still inside a call of
        the backend, which must then not be closed under it."""
        with self._lock:
            self._running = False
            self._converter_wake.notify_all()
            self._idle.wake_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = [t for t in self._threads if t.is_alive()]
        self.discard_waiting()
        if alive:
            self.log.error(f'{", ".join(alive)} did not stop within {timeout:g} s (inside '
                           f'the backend?); its frame stays in flight')
        return not alive

    def discard_waiting(self):
        """Frames that no worker has taken yet are dropped (counted): on deactivate/stop."""
        with self._lock:
            for job in self._slots.clear():
                self._books.settle(job, 'dropped')

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- producer side ------------------------------------------------------------------
    def submit(self, source, make_frame, meta=None, boxes=None):
        now = self.clock()
        with self._lock:
            state = self._slots.source(source)
            self._books.receive(state)
            self._in_times.append(now)
            self._seq += 1
            job = _Job(state, self._seq, make_frame, meta, now, boxes)
            if not self._running:  # stopped: nothing will take it
                self._books.settle(job, 'dropped')
                return
            if not state.budget.admit(now, self.max_rate):
                self._books.settle(job, 'throttled')
                return
            replaced = self._slots.put(job)
            if replaced is not None:
                self._books.settle(replaced, 'dropped')
            self._idle.wake_warmest()
            self._wake_converter()

    @property
    def idle_workers(self):
        """Workers waiting for a frame (warmed up, if warm-up is on)."""
        with self._lock:
            return len(self._idle)

    def pending(self):
        """Frames waiting in the slots (raw or converted), not yet taken by a worker."""
        with self._lock:
            return self._slots.pending()

    def live_threads(self):
        """(live workers, converter alive)."""
        workers = sum(t.is_alive() for t in self._threads if '-worker-' in t.name)
        converter = not self.convert_ahead or any(t.is_alive() for t in self._threads
                                                  if t.name.endswith('converter'))
        return workers, converter

    # ---- settling -----------------------------------------------------------------------
    def _settle(self, job, outcome, exc=None, report=True):
        """Settle a frame; a malformed one or a failed inference goes to on_error (unless
        `report` is False: the failure was logged already)."""
        with self._lock:
            settled = self._books.settle(job, outcome, exc)
        if settled and report and outcome in ('malformed', 'errors'):
            try:
                self.on_error(job.source.name, 'malformed' if outcome == 'malformed'
                              else 'error', exc)
            except Exception:
                self.log.error(f'reporting a {outcome} frame from {job.source.name} failed:\n'
                               f'{traceback.format_exc()}')

    def _failed(self, job, exc):
        """A frame's failure outside the backend: logged with its traceback, counted."""
        self.log.error(f'{threading.current_thread().name}: a frame from {job.source.name} '
                       f'failed:\n{traceback.format_exc()}')
        self._settle(job, 'errors', exc, report=False)

    # ---- threads ------------------------------------------------------------------------
    def _guarded(self, loop):
        """No silent death: run a thread's loop; an exception that escapes it (a bug in
        the pool itself) is logged and the loop is entered again."""
        while True:
            try:
                loop()
                return
            except Exception:
                self.log.error(f'{threading.current_thread().name} failed and goes on:\n'
                               f'{traceback.format_exc()}')
                time.sleep(0.01)

    def _work(self):
        own = self.classifier.nv12_buffer()
        wake = threading.Condition(self._lock)
        if self.warmup:
            # One inference per thread before the first frame: the runtime's per-thread
            # state and this thread's buffers are set up now, not on a camera frame.
            try:
                self.classifier.infer(np.full_like(own, 128))
            except Exception as exc:
                self.log.error(f'warm-up inference failed: {type(exc).__name__}: {exc}')
        while True:
            task = self._take(wake)
            if task is None:
                return
            task.run(self, own)

    def _take(self, wake):
        """The next task for a worker: a frame by the sources' turns (held in its source's
        order from now on), else a box of another's frame; None when stopping. `wake`:
        this worker's condition (on the pool's lock)."""
        with self._lock:
            self._idle.park(wake)
            try:
                while self._running:
                    job = self._slots.take()
                    if job is not None:
                        job.source.order.hold(job.seq)
                        return job
                    box = self._next_box()
                    if box is not None:
                        return box
                    wake.wait()
                return None
            finally:
                self._idle.leave(wake)
                if self._slots.waiting() or self._fans:
                    self._idle.wake_warmest()  # more work waits: the next idle worker
                self._wake_converter()

    def _next_box(self):
        """A box task of a frame whose boxes are not all handed out (the lock held)."""
        while self._fans:
            box = self._fans[0].claim()
            if box is not None:
                return box
            self._fans.popleft()
        return None

    def _prepare(self, job, out):
        """Decode and convert (into `out`: a whole frame); False when the frame is
        malformed (then settled)."""
        t0 = self.clock()
        try:
            job.frame = job.make_frame()
            if job.boxes is None:
                job.nv12 = self.classifier.convert(job.frame, out=out)
                job.convert_s = self.clock() - t0
                return True
            job.plan, job.nv12 = self.classifier.convert_boxes(job.frame, job.boxes())
            job.convert_s = self.clock() - t0
            with self._lock:
                job.source.stats.boxes_skipped += job.plan.total_skipped
            return True
        except FrameError as exc:
            self._settle(job, 'malformed', exc)
        except Exception as exc:  # a conversion bug: this frame is unusable, the thread goes on
            self._settle(job, 'malformed', FrameError(f'{type(exc).__name__}: {exc}'))
        return False

    def _run_frame(self, job, own):
        """A frame a worker took: convert (unless the converter did), infer, post-process,
        then let go of it; a frame with boxes is let go by whoever finishes its last box."""
        result = None
        try:
            if job.nv12 is None and not self._prepare(job, own):
                return self._finish(job, None)
            if job.boxes is not None:
                return self._run_boxes(job)
            t0 = self.clock()
            try:
                scores = self.classifier.infer(job.nv12)
            except Exception as exc:
                self._settle(job, 'errors', exc)
                return self._finish(job, None)
            t1 = self.clock()
            hypotheses = self.classifier.postprocess(scores)
            result = self._result(job, hypotheses, t1 - t0, t1)
        except Exception as exc:
            self._failed(job, exc)
        self._finish(job, result)

    def _result(self, job, hypotheses, inference_s, t_inferred, boxes=None, inferences=1):
        now = self.clock()
        return Result(job.source.name, job.meta, hypotheses, job.t_in, inference_s,
                      now - job.t_in, job.frame, job.seq, job.boxes, boxes, job.plan,
                      inferences, job.convert_s, t_inferred)

    def _run_boxes(self, job):
        """The boxes of a frame this worker holds: handed out as tasks; this worker infers
        them one by one while idle workers take the others."""
        fan = _Fan(job)
        if not fan.left:   # every box skipped: nothing to infer
            return self._finish_boxes(fan)
        with self._lock:
            if fan.left > 1:
                self._fans.append(fan)
                self._idle.wake_warmest()
            box = fan.claim()
        while box is not None:
            self._run_box(fan, box.index)
            with self._lock:
                box = fan.claim()

    def _run_box(self, fan, index):
        """One box's backend call (on the holder of its frame or a helper); the thread that
        finishes the frame's last box finishes the frame."""
        scores, exc, t0 = None, None, self.clock()
        try:
            scores = self.classifier.infer(fan.job.nv12[index])
        except Exception as error:
            exc = error
        seconds = self.clock() - t0
        with self._lock:
            fan.scores[index], fan.seconds[index] = scores, seconds
            if exc is not None and fan.failure is None:
                fan.failure = exc
            fan.left -= 1
            last = not fan.left
        if last:
            self._finish_boxes(fan)

    def _finish_boxes(self, fan):
        job, result, t_inferred = fan.job, None, self.clock()
        try:
            if fan.failure is not None:
                self._settle(job, 'errors', fan.failure)
            else:
                boxes = [None] * len(job.plan.rects)
                for (index, _), scores in zip(job.plan.kept, fan.scores):
                    boxes[index] = self.classifier.postprocess(scores)
                # the boxes' calls may have run in parallel: their sum is the frame's cost
                result = self._result(job, [], sum(fan.seconds), t_inferred, boxes,
                                      len(fan.scores))
        except Exception as exc:
            self._failed(job, exc)
        self._finish(job, result)

    def _finish(self, job, result):
        """A worker lets go of `job` (with its result, or None when it was settled on the
        way): what its source's order lets out is published, by this thread unless another
        publishes that source's results now."""
        source = job.source
        with self._lock:
            stale = source.order.done(job.seq, None if result is None else (job, result))
            for old, _ in stale:
                self._books.settle(old, 'dropped')
            if not source.order.claim():
                return
        while True:
            with self._lock:
                item = source.order.next()
            if item is None:
                return
            try:
                self._publish(*item)
            except Exception as exc:  # a bug: that frame fails, the order goes on
                self._failed(item[0], exc)

    def _publish(self, job, result):
        """One result out (on_result); then settled: classified, or dropped when the
        output refused it."""
        try:
            delivered = self.on_result(result) is not False
        except Exception as exc:
            self._failed(job, exc)
            return
        with self._lock:
            if not self._books.settle(job, 'classified' if delivered else 'dropped'):
                return
            if delivered:
                if result.inferences:  # the inference window holds one backend call's time
                    self._inference.add(result.inference_s / result.inferences)
                self._end_to_end.add(result.end_to_end_s)
                now = self.clock()
                self._convert.add(result.convert_s)
                self._publish_time.add(now - result.t_inferred)
                self._done_times.append(now)
                if result.boxes is not None:
                    kept = len(result.plan.kept)
                    job.source.stats.boxes += kept
                    self._box_times.append((now, kept))

    def _wake_converter(self):
        """Wake the converter when it has work (the lock held): no idle worker and a raw
        frame waiting, what _convert_target asks. Not on every frame: at a camera's pace a
        worker is idle and the wake (twice a frame) only took the lock and the GIL from the
        worker as its inference started."""
        if len(self._idle) == 0 and self._slots.raw_waiting():
            self._converter_wake.notify()

    def _convert_target(self):
        """Convert ahead only while no worker is idle (an idle one converts its own)."""
        if len(self._idle) or not self._running:
            return None
        return self._slots.next_to_convert()

    def _convert_ahead(self):
        while True:
            with self._lock:
                while (job := self._convert_target()) is None:
                    if not self._running:
                        return
                    self._converter_wake.wait()
                if job.boxes is None:  # (crops of boxes get buffers of their own)
                    job.buffer = self._books.buffers.get()
            if not self._prepare(job, job.buffer):
                continue                    # settled malformed, its buffer given back
            with self._lock:
                dropped = [job] if not self._running else self._slots.converted(job)
                for old in dropped:
                    self._books.settle(old, 'dropped')
                if job not in dropped:
                    self.converted_ahead += 1
                    self._idle.wake_warmest()

    # ---- stats --------------------------------------------------------------------------
    def stats(self, window_s=5.0):
        """Totals and recent rates: a snapshot (one lock) for diagnostics and benchmarks."""
        now = self.clock()
        with self._lock:
            per_source = {name: SourceStats(**vars(s.stats))
                          for name, s in self._slots.sources.items()}
            inf50, inf99 = self._inference.percentiles(50, 99)
            convert50, = self._convert.percentiles(50)
            publish50, = self._publish_time.percentiles(50)
            e2e50, e2e99 = self._end_to_end.percentiles(50, 99)
            since = max(now - window_s, self.started_at or now)
            span = max(now - since, 1e-9)
            out_fps = sum(1 for t in self._done_times if t >= since) / span
            in_fps = sum(1 for t in self._in_times if t >= since) / span
            boxes_ps = sum(n for t, n in self._box_times if t >= since) / span
            consecutive = self._books.consecutive_errors
        totals = SourceStats()
        for s in per_source.values():
            totals.add(s)
        workers, converter = self.live_threads()
        return {
            **{f.name: getattr(totals, f.name) for f in fields(SourceStats)
               if f.name != 'last_error'},
            'consecutive_errors': consecutive,
            'input_fps': in_fps, 'classified_fps': out_fps, 'boxes_per_s': boxes_ps,
            'inference_ms_p50': inf50 * 1e3, 'inference_ms_p99': inf99 * 1e3,
            'decode_convert_ms_p50': convert50 * 1e3,
            'postprocess_publish_ms_p50': publish50 * 1e3,
            'end_to_end_ms_p50': e2e50 * 1e3, 'end_to_end_ms_p99': e2e99 * 1e3,
            'sources': per_source, 'workers': self.workers, 'live_workers': workers,
            'converter_alive': converter,
        }
