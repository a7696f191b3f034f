"""The worker pool: frames from any number of sources, N inference threads, one converter.

    pool = WorkerPool(classifier, workers, on_result=publish, on_error=report).start()
    pool.submit(source, make_frame, meta)   # from a subscription callback: stores, returns
    pool.submit(source, make_frame, meta, boxes=get_boxes)   # a detector's boxes instead
    ...
    pool.stop()                             # joins the threads, settles what was waiting

make_frame() runs off the caller's thread and returns a Frame (the decode happens there);
a FrameError it raises counts the frame as malformed. With `boxes` (a callable returning
(N, 4) centre x, centre y, width, height), the frame's boxes are classified instead of the
whole frame (Classifier.convert_boxes: crops through the same NV12 path). A frame with
boxes is one frame in every rule below, and its Result carries a top-k per box; its boxes
fan out: the worker holding the frame infers them one by one, and idle workers with no
frame to take help it with the next ones (WorkerPool._infer_boxes, _help). Each rule has
one home here:

  newest wins          _Source.put: one waiting frame per source; a newer one replaces
                       it, and the replaced one is counted dropped
  sources take turns   whose_turn(): the source served longest ago goes first, whatever
                       the sources' rates or the order their frames arrive in
  warm worker first    _IdleWorkers.wake_warmest(): the worker that went idle last takes
                       the next frame (at a camera's pace one warm thread does every frame)
  convert ahead        WorkerPool._convert_target(): while no worker is idle, the converter
                       decodes and converts the frame whose turn comes next
  in order             WorkerPool._finish(): a result waits (no thread waits with it)
                       until every older frame of its source that a worker holds is
                       finished; the worker finishing the oldest publishes the ones behind
  never back in time   WorkerPool._publish(): a result older than one already published
                       for its source is dropped (counted), never published
  every frame counted  _Books: per source, received = classified + dropped + malformed +
                       errors + in_flight, under one lock, at every moment
  no silent death      WorkerPool._guarded(): an exception anywhere in a thread's loop is
                       logged with its traceback, counted against the frame's source, and
                       the thread goes on

on_result(Result) runs on a worker thread, one result of a source at a time, in the
order of the frames; it returns False when it did not deliver the result (an output gate
closed by a deactivate): the frame then counts as dropped, not classified.
on_error(source, kind, exception) reports 'malformed' frames and failed inferences
('error'); any other failure is logged with its traceback. Failures of either callback
go to `logger` (anything with error(str): the node passes its ROS logger,
so they reach /rosout).
"""
import collections
import logging
import threading
import time
import traceback
from dataclasses import dataclass, fields
from typing import Any, List, Optional

import numpy as np

from .frames import FrameError
from .postprocess import Hypothesis

log = logging.getLogger('edge_classifier')

OUTCOMES = ('classified', 'dropped', 'malformed', 'errors')


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


@dataclass
class SourceStats:
    """One source's books: received = classified + dropped + malformed + errors + in_flight."""
    received: int = 0
    classified: int = 0
    dropped: int = 0
    malformed: int = 0
    errors: int = 0
    in_flight: int = 0
    boxes: int = 0                  # boxes classified (frames with boxes; not in the sum)
    boxes_skipped: int = 0          # boxes left out (invalid, outside, small, over the limit)
    last_error: str = ''

    def balanced(self):
        return self.received == (self.classified + self.dropped + self.malformed +
                                 self.errors + self.in_flight)

    def add(self, other):
        for f in fields(self):
            if f.name != 'last_error':
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(eq=False)
class _Job:
    """One frame on its way: from submit() to one of the OUTCOMES (settled once)."""
    source: '_Source'
    seq: int
    make_frame: Any
    meta: Any
    t_in: float
    boxes: Any = None                    # callable -> (N, 4) boxes, or None: the whole frame
    frame: Any = None
    nv12: Any = None                     # converted (a buffer of the pool's or the worker's;
    plan: Any = None                     # with boxes, a list of one buffer per kept box)
    spare: bool = False                  # nv12 is one of the pool's spare buffers
    fan: Any = None                      # _FanOut while its boxes are being inferred
    settled: bool = False


class _FanOut:
    """The boxes of one frame being inferred (the pool's lock guards it): `next` is the
    box index to hand out, `pending` the boxes not finished; `done` is notified when
    pending reaches 0."""

    def __init__(self, count, lock):
        self.next = 0
        self.pending = count
        self.scores = [None] * count
        self.seconds = [0.0] * count     # each box's backend call
        self.failure = None
        self.done = threading.Condition(lock)

    def claim(self):
        """The next box index, or None when every box is handed out."""
        if self.next >= len(self.scores):
            return None
        self.next += 1
        return self.next - 1


class _Source:
    """A source's waiting frames, its turn and its order. The pool's lock guards all of it
    but `finished` and `published`, which emit_lock guards."""

    def __init__(self, name):
        self.name = name
        self.stats = SourceStats()
        self.raw = None          # the newest frame, not converted
        self.ready = None        # converted ahead; older than raw when both are set
        self.served = 0          # the turn at which a worker last took one of its frames
        self.taken = 0           # seq of the newest frame a worker took
        self.working = set()     # seqs of the frames workers hold now
        self.finished = {}       # seq -> (job, result): done, behind an older frame (emit_lock)
        self.published = 0       # seq of the newest result emitted (emit_lock)
        self.emit_lock = threading.Lock()

    def put(self, job):
        """Newest wins: `job` waits; returns the frame it replaced (to count as dropped)."""
        replaced, self.raw = self.raw, job
        return replaced

    def oldest_waiting(self):
        return self.ready or self.raw

    def take(self):
        """The frame a worker gets: the converted one (older) first, else the raw one."""
        job = self.ready or self.raw
        if job is self.ready:
            self.ready = None
        else:
            self.raw = None
        self.taken = job.seq
        self.working.add(job.seq)
        return job


def whose_turn(sources, frame=_Source.oldest_waiting, first=lambda source: False):
    """Sources take turns: among those with a frame waiting (`frame(source)`), the one
    served longest ago, then the one whose frame is oldest; `first(source)` True sorts a
    source behind the others."""
    best = None
    for source in sources:
        job = frame(source)
        if job is not None:
            key = (first(source), source.served, job.seq)
            if best is None or key < best[0]:
                best = (key, source)
    return None if best is None else best[1]


class _IdleWorkers:
    """Idle workers' conditions, the one that went idle last on top: its thread, caches
    and the runtime's state for it are warm. Used with the pool's lock held."""

    def __init__(self):
        self._stack = []

    def park(self, wake):
        self._stack.append(wake)

    def leave(self, wake):
        self._stack.remove(wake)

    def wake_warmest(self):
        if self._stack:
            self._stack[-1].notify()

    def wake_all(self):
        for wake in self._stack:
            wake.notify()

    def __len__(self):
        return len(self._stack)


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


class WorkerPool:
    """N inference workers and one converter over latest-frame slots, one per source.

    Memory is bounded whatever the input rate: at most one raw and one converted frame
    wait per source, and the converted ones reuse a few spare buffers.
    """

    def __init__(self, classifier, workers=None, on_result=None, on_error=None,
                 clock=time.monotonic, warmup=True, logger=None):
        self.classifier = classifier
        self.log = logger or log
        self.workers = workers or classifier.cfg.workers
        self.on_result = on_result or (lambda result: True)
        self.on_error = on_error or (lambda source, kind, exc: None)
        self.clock = clock
        self.warmup = warmup
        self._lock = threading.Lock()
        self._converter_wake = threading.Condition(self._lock)
        self._sources = {}                # name -> _Source, in order of first frame
        self._seq = 0
        self._turn = 0
        self._idle = _IdleWorkers()
        self._fans = []                   # frames whose boxes idle workers can help with
        self._spare = []                  # NV12 buffers for frames converted ahead
        self._running = False
        self._threads = []
        self._inference = _Window()
        self._end_to_end = _Window()
        self._done_times = collections.deque(maxlen=4000)
        self._in_times = collections.deque(maxlen=4000)
        self._box_times = collections.deque(maxlen=4000)   # (time, boxes) per frame
        self.consecutive_errors = 0
        self.started_at = None
        self.converted_ahead = 0

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self):
        with self._lock:
            if self._running:
                return self
            self._running = True
        self.started_at = self.clock()
        targets = [(self._work, f'edge_classifier-worker-{i}') for i in range(self.workers)]
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
            for source in self._sources.values():
                for job in (source.raw, source.ready):
                    if job is not None:
                        self._settle_locked(job, 'dropped')
                        if job.spare:
                            self._spare.append(job.nv12)
                source.raw = source.ready = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- producer side ------------------------------------------------------------------
    def submit(self, source, make_frame, meta=None, boxes=None):
        now = self.clock()
        with self._lock:
            state = self._sources.get(source)
            if state is None:
                state = self._sources[source] = _Source(source)
            state.stats.received += 1
            state.stats.in_flight += 1
            self._in_times.append(now)
            self._seq += 1
            replaced = state.put(_Job(state, self._seq, make_frame, meta, now, boxes))
            if replaced is not None:
                self._settle_locked(replaced, 'dropped')
            if not self._running:  # stopped: nothing will take it
                self._settle_locked(state.raw, 'dropped')
                state.raw = None
                return
            self._idle.wake_warmest()
            self._converter_wake.notify()

    @property
    def idle_workers(self):
        """Workers waiting for a frame (warmed up, if warm-up is on)."""
        with self._lock:
            return len(self._idle)

    def pending(self):
        """Frames waiting in the slots (raw or converted), not yet taken by a worker."""
        with self._lock:
            return sum((s.raw is not None) + (s.ready is not None)
                       for s in self._sources.values())

    def live_threads(self):
        """(live workers, converter alive)."""
        workers = sum(t.is_alive() for t in self._threads if '-worker-' in t.name)
        converter = any(t.is_alive() for t in self._threads if t.name.endswith('converter'))
        return workers, converter

    # ---- the books ----------------------------------------------------------------------
    def _settle_locked(self, job, outcome, exc=None):
        """A frame's one outcome: out of in_flight, into `outcome`. With the lock held."""
        if job.settled:
            return False
        job.settled = True
        stats = job.source.stats
        stats.in_flight -= 1
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        if exc is not None:
            stats.last_error = str(exc)
        if outcome == 'errors':
            self.consecutive_errors += 1
        return True

    def _settle(self, job, outcome, exc=None, report=True):
        """Settle a frame; a malformed one or a failed inference goes to on_error (unless
        `report` is False: the failure was logged already)."""
        with self._lock:
            settled = self._settle_locked(job, outcome, exc)
        if settled and report and outcome in ('malformed', 'errors'):
            try:
                self.on_error(job.source.name, 'malformed' if outcome == 'malformed'
                              else 'error', exc)
            except Exception:
                self.log.error(f'reporting a {outcome} frame from {job.source.name} failed:\n'
                               f'{traceback.format_exc()}')

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

    def _take(self, wake):
        """The next frame for a worker, by the sources' turns; None when stopping.
        `wake`: this worker's condition (on the pool's lock)."""
        with self._lock:
            self._idle.park(wake)
            try:
                while self._running:
                    source = whose_turn(self._sources.values())
                    if source is not None:
                        self._turn += 1
                        source.served = self._turn
                        return source.take()
                    help_ = self._help_locked()  # no frame waits: help another's boxes
                    if help_ is not None:
                        return help_
                    wake.wait()
                return None
            finally:
                self._idle.leave(wake)
                if whose_turn(self._sources.values()) is not None or self._fans:
                    self._idle.wake_warmest()  # more work waits: the next idle worker
                self._converter_wake.notify()  # the converter watches the idle count

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
            job = self._take(wake)
            if job is None:
                return
            if isinstance(job, tuple):  # (fan, index): a box of a frame another worker holds
                self._infer_box(*job)
                continue
            result = None
            try:
                result = self._run(job, own)
            except Exception as exc:
                self._failed(job, exc)
            finally:
                if job.spare:
                    with self._lock:
                        self._spare.append(job.nv12)
                self._finish(job, result)

    def _failed(self, job, exc):
        """A frame's failure outside the backend: logged with its traceback, counted."""
        self.log.error(f'{threading.current_thread().name}: a frame from {job.source.name} '
                       f'failed:\n{traceback.format_exc()}')
        self._settle(job, 'errors', exc, report=False)

    def _prepare(self, job, out):
        """Decode and convert into `out`; False when the frame is malformed (settled)."""
        try:
            job.frame = job.make_frame()
            if job.boxes is None:
                job.nv12 = self.classifier.convert(job.frame, out=out)
                return True
            job.plan, job.nv12 = self.classifier.convert_boxes(job.frame, job.boxes())
            with self._lock:
                job.source.stats.boxes_skipped += job.plan.total_skipped
            return True
        except FrameError as exc:
            self._settle(job, 'malformed', exc)
        except Exception as exc:  # a conversion bug: this frame is unusable, the thread goes on
            self._settle(job, 'malformed', FrameError(f'{type(exc).__name__}: {exc}'))
        return False

    def _run(self, job, own):
        """Convert (unless the converter did), infer, post-process: the Result, or None
        when the frame was settled on the way (malformed, failed inference)."""
        clf = self.classifier
        if job.nv12 is None and not self._prepare(job, own):
            return None
        t0 = self.clock()
        try:
            if job.boxes is None:
                scores = clf.infer(job.nv12)
            else:
                scores, seconds = self._infer_boxes(job)
        except Exception as exc:
            self._settle(job, 'errors', exc)
            return None
        t1 = self.clock()
        if job.boxes is None:
            hypotheses, boxes, inferences = clf.postprocess(scores), None, 1
        else:
            t0 = t1 - seconds   # the sum of the boxes' calls (they may have run in parallel)
            hypotheses, boxes, inferences = [], [None] * len(job.plan.rects), len(scores)
            for (index, _), box_scores in zip(job.plan.kept, scores):
                boxes[index] = clf.postprocess(box_scores)
        done = self.clock()
        return Result(job.source.name, job.meta, hypotheses, job.t_in, t1 - t0,
                      done - job.t_in, job.frame, job.seq, job.boxes, boxes, job.plan,
                      inferences)

    def _infer_boxes(self, job):
        """Infer every crop of a frame with boxes: this worker takes them one by one while
        idle workers help (_help_locked); returns (scores in box order, total seconds of
        the backend calls) once all are done, or raises the first failure."""
        count = len(job.nv12)
        fan = job.fan = _FanOut(count, self._lock)
        if count > 1:
            with self._lock:
                self._fans.append(job)
                self._idle.wake_warmest()
        while True:
            with self._lock:
                index = fan.claim()
                if index is None:
                    if job in self._fans:
                        self._fans.remove(job)
                    while fan.pending:   # helpers still inside the backend
                        fan.done.wait()
                    break
            self._infer_box(job, index)
        if fan.failure is not None:
            raise fan.failure
        return fan.scores, sum(fan.seconds)

    def _help_locked(self):
        """(job, box index) of a frame whose boxes are not all handed out; None if no
        frame has one. With the lock held."""
        while self._fans:
            job = self._fans[0]
            index = job.fan.claim()
            if index is not None:
                return job, index
            self._fans.pop(0)
        return None

    def _infer_box(self, job, index):
        """One box's backend call (on the frame's worker or a helper); never raises."""
        fan = job.fan
        scores, exc, t0 = None, None, self.clock()
        try:
            scores = self.classifier.infer(job.nv12[index])
        except Exception as error:
            exc = error
        finally:
            seconds = self.clock() - t0
            with self._lock:
                fan.scores[index], fan.seconds[index] = scores, seconds
                if exc is not None and fan.failure is None:
                    fan.failure = exc
                fan.pending -= 1
                if not fan.pending:
                    fan.done.notify_all()

    def _finish(self, job, result):
        """In order: the worker lets go of `job`; its result (if any) is published once no
        older frame of the source is held by a worker, and so are the results that were
        waiting behind it. Nobody waits: a result behind an older frame stays in
        `finished` (in flight) and the worker that finishes that frame publishes it."""
        source = job.source
        with source.emit_lock:
            with self._lock:
                source.working.discard(job.seq)
            if result is not None:
                source.finished[job.seq] = (job, result)
            while source.finished:
                seq = min(source.finished)
                with self._lock:
                    if any(held < seq for held in source.working):
                        return
                self._publish(*source.finished.pop(seq))

    def _publish(self, job, result):
        """Never back in time: a result older than one already published for its source is
        dropped. Runs with the source's emit_lock held: one result of a source at a time."""
        source = job.source
        if job.seq < source.published:
            self._settle(job, 'dropped')  # (a safety net: _finish and the converter keep
            return                        # older frames from reaching here)
        source.published = job.seq
        try:
            delivered = self.on_result(result) is not False
        except Exception as exc:
            self._failed(job, exc)
            return
        with self._lock:
            if not self._settle_locked(job, 'classified' if delivered else 'dropped'):
                return
            if delivered:
                self.consecutive_errors = 0
                if result.inferences:  # the inference window holds one backend call's time
                    self._inference.add(result.inference_s / result.inferences)
                self._end_to_end.add(result.end_to_end_s)
                now = self.clock()
                self._done_times.append(now)
                if result.boxes is not None:
                    kept = len(result.plan.kept)
                    job.source.stats.boxes += kept
                    self._box_times.append((now, kept))

    def _convert_target(self):
        """Convert ahead: while no worker is idle, the source whose raw frame's turn comes
        next (sources with nothing converted yet first). With the lock held."""
        if len(self._idle) or not self._running:
            return None
        return whose_turn(self._sources.values(), frame=lambda s: s.raw,
                          first=lambda s: s.ready is not None)

    def _convert_ahead(self):
        while True:
            with self._lock:
                while (source := self._convert_target()) is None:
                    if not self._running:
                        return
                    self._converter_wake.wait()
                job, source.raw = source.raw, None
                out = self._spare.pop() if self._spare else None
            job.spare = job.boxes is None  # (crops of boxes get buffers of their own)
            prepared = self._prepare(
                job, out if out is not None else self.classifier.nv12_buffer())
            if not (prepared and job.spare):
                job.spare = False
                if out is not None:
                    with self._lock:
                        self._spare.append(out)
                if not prepared:
                    continue
            with self._lock:
                if job.seq < source.taken or not self._running:
                    # a worker took a newer frame of this source meanwhile: this one would
                    # go back in time (or the pool stopped)
                    self._settle_locked(job, 'dropped')
                    if job.spare:
                        self._spare.append(job.nv12)
                    continue
                if source.ready is not None:  # an older converted frame nobody took
                    self._settle_locked(source.ready, 'dropped')
                    if source.ready.spare:
                        self._spare.append(source.ready.nv12)
                source.ready = job
                self.converted_ahead += 1
                self._idle.wake_warmest()

    # ---- stats --------------------------------------------------------------------------
    def stats(self, window_s=5.0):
        """Totals and recent rates: a snapshot (one lock) for diagnostics and benchmarks."""
        now = self.clock()
        with self._lock:
            per_source = {name: SourceStats(**vars(s.stats))
                          for name, s in self._sources.items()}
            inf50, inf99 = self._inference.percentiles(50, 99)
            e2e50, e2e99 = self._end_to_end.percentiles(50, 99)
            since = max(now - window_s, self.started_at or now)
            span = max(now - since, 1e-9)
            out_fps = sum(1 for t in self._done_times if t >= since) / span
            in_fps = sum(1 for t in self._in_times if t >= since) / span
            boxes_ps = sum(n for t, n in self._box_times if t >= since) / span
            consecutive = self.consecutive_errors
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
            'end_to_end_ms_p50': e2e50 * 1e3, 'end_to_end_ms_p99': e2e99 * 1e3,
            'sources': per_source, 'workers': self.workers, 'live_workers': workers,
            'converter_alive': converter,
        }
