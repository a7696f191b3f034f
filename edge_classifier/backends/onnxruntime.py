"""ONNX Runtime: the simulation backend, fed the same NV12 bytes as the BPU.

NV12 -> RGB/BGR (OpenCV) -> (x - mean) / std -> NCHW float32 -> session. Per-thread
preallocated buffers, one shared session (its run() releases the GIL, so worker threads
run inferences in parallel).
"""
import threading

import numpy as np

from .base import Backend, BackendError
from ..nv12 import nv12_to_rgb

_OPT_LEVELS = {'disable': 'ORT_DISABLE_ALL', 'basic': 'ORT_ENABLE_BASIC',
               'extended': 'ORT_ENABLE_EXTENDED', 'all': 'ORT_ENABLE_ALL'}


class OnnxRuntimeBackend(Backend):
    name = 'onnxruntime'

    def __init__(self, cfg):
        super().__init__(cfg)
        self.model_path = cfg.resolve(cfg.onnx_path)
        self.session = None
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
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.cfg.ort_intra_op_threads
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
            self.session = ort.InferenceSession(str(self.model_path), sess_options=opts,
                                                providers=['CPUExecutionProvider'])
        except Exception as exc:  # ORT raises its own exception types
            raise BackendError(f'onnxruntime cannot load {self.model_path}: '
                               f'{str(exc).strip()[:300]} (corrupt file or not an ONNX model? '
                               f'Delete it, then '
                               f'{self.cfg.prepare_hint("onnx_path")})') from exc
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
            outs = [self.session.run(None, {self.input_name: blob[i:i + 1]})[0]
                    for i in range(blob.shape[0])]
            return self._check_output(np.concatenate(outs), blob.shape[0])
        return self._check_output(self.session.run(None, {self.input_name: blob})[0],
                                  blob.shape[0])

    def infer(self, nv12_batch):
        if not self.loaded:
            raise BackendError('onnxruntime backend used before load()')
        return self.run_blob(self.preprocess(nv12_batch))

    def close(self):
        self.session = None
        super().close()
