"""ONNX Runtime: the simulation backend, fed the same NV12 bytes as the BPU.

NV12 -> RGB/BGR (OpenCV) -> (x - mean) / std -> NCHW float32 -> session. Per-thread
preallocated buffers; run() releases the GIL, so worker threads run inferences in parallel.

Threads (ort_adaptive_threads): an inference that runs alone uses ort_intra_op_threads
(0 = one per core), so a sparse camera's frame is done soonest; one that starts while
another is running goes to a second, single-threaded session, so N workers under a flood
use N threads instead of N x cores (measured on 2 cores, Lite0, in README "Benchmarks").
"""
import collections
import threading
import time

import numpy as np

from .base import Backend, BackendError
from ..nv12 import nv12_to_rgb

WIDE_RUNS = 4     # the margin is half the shortest of the last WIDE_RUNS wide runs
PROBE_AFTER = 8   # after this many idle runs in a row kept narrow by the margin, one runs wide

_OPT_LEVELS = {'disable': 'ORT_DISABLE_ALL', 'basic': 'ORT_ENABLE_BASIC',
               'extended': 'ORT_ENABLE_EXTENDED', 'all': 'ORT_ENABLE_ALL'}


class OnnxRuntimeBackend(Backend):
    name = 'onnxruntime'

    def __init__(self, cfg):
        super().__init__(cfg)
        self.model_path = cfg.resolve(cfg.onnx_path)
        self.session = None
        self._narrow = None          # the single-threaded session (ort_adaptive_threads)
        self._lock = threading.Lock()
        self._running = 0
        self._last_end = float('-inf')
        self._wide_runs = collections.deque(maxlen=WIDE_RUNS)   # recent wide runs (s)
        self._wide_cold = True          # the wide session's first run is still to come
        self._kept_narrow = 0           # idle runs in a row the margin sent narrow
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
        self.session = self._session(ort, cfg.ort_intra_op_threads)
        if cfg.ort_adaptive_threads and cfg.workers > 1 and cfg.ort_intra_op_threads != 1:
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

    def _session(self, ort, threads):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
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
        """One session run: the wide session when the backend is idle (no run in flight,
        none ended within half a wide run's time: sparse frames), else the single-threaded
        one (when there is one). The margin keeps back-to-back runs of several workers on
        one thread each, instead of one of them grabbing every core now and then.

        The margin must not keep sparse frames narrow, or a camera's every frame takes a
        single thread's time: it is half a *wide* run (measured against the last run of
        either kind, a slow CPU's 24 ms single-threaded run left 9 of 33 ms idle: narrow
        for good), the shortest of the last few (a run stalled by another process is
        longer, never shorter), not counting the session's first run (cold: ONNX Runtime
        allocates and pre-packs then; the workers' warm-up took 52 ms where a frame takes
        6, and kept a 30 Hz camera on one thread). Should the margin still be wrong, every
        PROBE_AFTER-th idle run it sent narrow runs wide, and is measured."""
        narrow = self._narrow
        if narrow is None:
            return self.session.run(None, {self.input_name: blob})[0]
        with self._lock:
            start = self.clock()
            idle = self._running == 0
            margin = min(self._wide_runs, default=0.0) / 2
            wide = idle and (start - self._last_end >= margin
                             or self._kept_narrow >= PROBE_AFTER)
            self._kept_narrow = 0 if wide or not idle else self._kept_narrow + 1
            self._running += 1
            self.narrow_runs += not wide
        try:
            return (self.session if wide else narrow).run(None, {self.input_name: blob})[0]
        finally:
            with self._lock:
                self._running -= 1
                self._last_end = self.clock()
                if wide and self._wide_cold:
                    self._wide_cold = False
                elif wide:
                    self._wide_runs.append(self._last_end - start)

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
