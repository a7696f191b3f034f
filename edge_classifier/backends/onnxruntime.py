"""ONNX Runtime: the simulation backend, fed the same NV12 bytes as the BPU.

NV12 -> RGB/BGR (OpenCV) -> (x - mean) / std -> NCHW float32 -> session. Per-thread
preallocated buffers; run() releases the GIL, so worker threads run inferences in parallel.

Threads (ort_adaptive_threads): there are two sessions, a wide one (ort_intra_op_threads,
0 = one per core) and a single-threaded one. An inference that starts while another is
running goes to the single-threaded one, so N workers under a flood use N threads instead
of N x cores; one that runs alone goes to whichever of the two has been faster alone here
lately (the wide one on an idle machine; the single-threaded one where the CPU is scarce,
under a CPU quota, where two threads that wait on each other only lose time). With
ort_intra_op_threads 0, the wide session has one thread per physical core, each of its
helpers pinned to its own core, and the worker running it is pinned to the remaining one
for that run: unpinned, ONNX Runtime's helper was queued behind the worker on one CPU now
and then, while the other CPU idled (a third of the runs in the node took 18 ms, not 7).
Measured on 2 cores, Lite0, in README "Benchmarks".
"""
import collections
import os
import threading
import time
from pathlib import Path

import numpy as np

from .base import Backend, BackendError
from ..nv12 import nv12_to_rgb

SAMPLES = 15       # a session's time alone: the median of its last SAMPLES runs alone
PROBE_EVERY = 16   # every PROBE_EVERY-th run alone goes to the other session (measured again)
NARROW_IF = 0.8    # a run alone goes narrow once narrow runs alone take < NARROW_IF x wide ones

_OPT_LEVELS = {'disable': 'ORT_DISABLE_ALL', 'basic': 'ORT_ENABLE_BASIC',
               'extended': 'ORT_ENABLE_EXTENDED', 'all': 'ORT_ENABLE_ALL'}


def core_groups(allowed, topology='/sys/devices/system/cpu'):
    """`allowed` CPUs, one sorted list per physical core (SMT siblings together), in CPU
    order; a CPU whose topology cannot be read is a core of its own."""
    groups = {}
    for cpu in sorted(allowed):
        try:
            key = tuple(Path(topology, f'cpu{cpu}', 'topology', name).read_text().strip()
                        for name in ('physical_package_id', 'core_id'))
        except OSError:
            key = ('cpu', cpu)
        groups.setdefault(key, []).append(cpu)
    return list(groups.values())


class _Pinning:
    """Where the wide session's threads run: its n - 1 helpers one per core (ONNX Runtime's
    session.intra_op_thread_affinities, 1-based CPU ids), the calling worker on the first
    core while it runs the session (for_this_process: None below 2 cores)."""

    def __init__(self, groups):
        self.threads = len(groups)
        self.caller = set(groups[0])
        self.helpers = ';'.join(','.join(str(cpu + 1) for cpu in group)
                                for group in groups[1:])

    @classmethod
    def for_this_process(cls):
        if not hasattr(os, 'sched_getaffinity'):  # not Linux
            return None
        groups = core_groups(os.sched_getaffinity(0))
        return cls(groups) if len(groups) > 1 else None

    def run(self, session, feeds):
        """session.run with this thread on the caller's core, then where it was."""
        try:
            before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.caller)
        except OSError:   # a cpuset that changed under us: run where the thread is
            return session.run(None, feeds)[0]
        try:
            return session.run(None, feeds)[0]
        finally:
            os.sched_setaffinity(0, before)


class OnnxRuntimeBackend(Backend):
    name = 'onnxruntime'

    def __init__(self, cfg):
        super().__init__(cfg)
        self.model_path = cfg.resolve(cfg.onnx_path)
        self.session = None
        self._narrow = None          # the single-threaded session (ort_adaptive_threads)
        self.pinning = None          # _Pinning of the wide session (with the narrow one)
        self._lock = threading.Lock()
        self._running = 0
        self._last_end = float('-inf')
        self._alone = {'wide': None, 'narrow': None}   # recent runs alone (s); None: cold
        self._runs_alone = 0            # runs that started with no other in flight
        self._starts = 0                # runs started (a run alone saw none start)
        self.clock = time.monotonic
        self.narrow_runs = 0            # runs that went to the single-threaded session
        self._local = threading.local()
        self._mean = np.asarray(cfg.mean, np.float32).reshape(3, 1, 1)
        self._inv_std = (1.0 / np.asarray(cfg.std, np.float64)).astype(np.float32).reshape(3, 1, 1)
        self.fixed_batch = None
        self.metadata = {}

    def load(self):
        if self.loaded:
            return self
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError('onnxruntime is not installed: `pip install onnxruntime` '
                               '(the standalone environment, make setup, has it)') from exc
        self._require_file(self.model_path, 'onnx_path')
        cfg = self.cfg
        adaptive = cfg.ort_adaptive_threads and cfg.workers > 1 and cfg.ort_intra_op_threads != 1
        if adaptive and cfg.ort_intra_op_threads == 0:
            self.pinning = _Pinning.for_this_process()
        self.session = self._session(ort, cfg.ort_intra_op_threads, self.pinning)
        if adaptive:
            self._narrow = self._session(ort, 1)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] != 3 or shape[2:] != [self.height, self.width]:
            raise BackendError(f'{self.model_path}: input {inp.name} has shape {shape}, the '
                               f'config ({self.cfg.origin or "parameters"}) expects '
                               f'[N, 3, {self.height}, {self.width}] (input_height/input_width)')
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        meta = self.session.get_modelmeta()
        self.metadata = dict(meta.custom_metadata_map or {})
        self.untrained = self.metadata.get('edge_classifier.weights') == 'untrained'
        self.loaded = True
        return self

    def _session(self, ort, threads, pinning=None):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads if pinning is None else pinning.threads
        if pinning is not None:   # (affinities need the thread count set)
            opts.add_session_config_entry('session.intra_op_thread_affinities',
                                          pinning.helpers)
        spinning = self.cfg.ort_spinning
        opts.add_session_config_entry('session.intra_op.allow_spinning',
                                      '0' if spinning == 'never' else '1')
        if spinning == 'in_run':  # threads stop spinning as soon as a run completes
            opts.add_session_config_entry('session.force_spinning_stop', '1')
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                                _OPT_LEVELS[self.cfg.ort_graph_optimization])
        opts.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.model_path), sess_options=opts,
                                        providers=['CPUExecutionProvider'])
        except Exception as exc:  # ORT raises its own exception types
            raise BackendError(f'onnxruntime cannot load {self.model_path}: '
                               f'{str(exc).strip()[:300]} (corrupt file or not an ONNX model? '
                               f'Delete it, then '
                               f'{self.cfg.prepare_hint("onnx_path")})') from exc

    def _run(self, blob):
        """One session run. With the single-threaded session (ort_adaptive_threads):
        - a run that starts while another is in flight, or less than half a run after the
          last one ended (back-to-back frames of a flood), goes narrow: one of several
          workers grabbing every core now and then only stalls the others;
        - a run alone goes to the session that was faster alone lately (the median of its
          last SAMPLES runs alone; narrow only when NARROW_IF times wide or less: the wide
          session's runs are noisy; each is tried 3 times first), and every PROBE_EVERY-th
          to the other one, so the choice follows the machine's load. An idle 2-core VM:
          wide p50 7 ms, narrow 10 (Lite0, in the node); under a CPU quota of 0.8 core the
          wide session's two threads wait on each other: wide 15, narrow 10 (node_bench
          30 Hz e2e p50 25 ms all wide, 15 now).
        A session's first run is not counted (cold: ONNX Runtime allocates and pre-packs;
        the workers' warm-up took 52 ms where a frame then took 6, and once kept a 30 Hz
        camera narrow), nor a run during which another one started. A wide run is pinned
        (self.pinning): it runs alone, so only one worker at a time is pinned."""
        narrow = self._narrow
        if narrow is None:
            return self.session.run(None, {self.input_name: blob})[0]
        with self._lock:
            start = self.clock()
            self._starts += 1
            starts, alone, kind = self._starts, self._running == 0, 'narrow'
            if alone:
                self._runs_alone += 1
                median = {k: sorted(t)[len(t) // 2] for k, t in self._alone.items() if t}
                if start - self._last_end >= min(median.values(), default=0.0) / 2:
                    kind = self._faster_alone(median)
                if self._runs_alone % PROBE_EVERY == 0:
                    kind = 'wide' if kind == 'narrow' else 'narrow'
            self._running += 1
            self.narrow_runs += kind == 'narrow'
        try:
            feeds = {self.input_name: blob}
            if kind == 'narrow':
                return narrow.run(None, feeds)[0]
            if self.pinning is not None:
                return self.pinning.run(self.session, feeds)
            return self.session.run(None, feeds)[0]
        finally:
            with self._lock:
                self._running -= 1
                self._last_end = self.clock()
                times = self._alone[kind]
                if times is None:       # its first run: cold
                    self._alone[kind] = collections.deque(maxlen=SAMPLES)
                elif alone and self._starts == starts:
                    times.append(self._last_end - start)

    def _faster_alone(self, median):
        """The session for a run alone (the lock held): wide until it has 3 runs alone,
        then narrow until it has 3, then the faster (narrow only at NARROW_IF x wide)."""
        known = {kind for kind, times in self._alone.items() if times and len(times) >= 3}
        if 'wide' not in known:
            return 'wide'
        if 'narrow' not in known:
            return 'narrow'
        return 'narrow' if median['narrow'] < NARROW_IF * median['wide'] else 'wide'

    def _buffers(self, n):
        local = self._local
        if getattr(local, 'n', 0) < n:
            local.rgb = np.empty((self.height, self.width, 3), np.uint8)
            local.blob = np.empty((n, 3, self.height, self.width), np.float32)
            local.n = n
        return local.rgb, local.blob[:n]

    def preprocess(self, nv12_batch):
        """NV12 buffers -> normalized NCHW float32, exactly what the session sees.

        Written into this thread's preallocated buffer (valid until its next call):
        NV12 -> RGB (OpenCV), uint8 HWC -> float32 CHW, then in-place - mean, * 1/std.
        """
        rgb, blob = self._buffers(len(nv12_batch))
        for i, nv12 in enumerate(nv12_batch):
            nv12_to_rgb(nv12, self.width, self.height, out=rgb, order=self.cfg.channel_order)
            blob[i] = rgb.transpose(2, 0, 1)
        blob -= self._mean
        blob *= self._inv_std
        return blob

    def run_blob(self, blob):
        """Inference on a preprocessed NCHW float32 blob (the 'bare backend')."""
        if self.fixed_batch == 1 and blob.shape[0] > 1:
            outs = [self._run(blob[i:i + 1]) for i in range(blob.shape[0])]
            return self._check_output(np.concatenate(outs), blob.shape[0])
        return self._check_output(self._run(blob), blob.shape[0])

    def infer(self, nv12_batch):
        if not self.loaded:
            raise BackendError('onnxruntime backend used before load()')
        return self.run_blob(self.preprocess(nv12_batch))

    def close(self):
        self.session = self._narrow = None
        super().close()
