"""RDK X5 BPU through the board's Python API, hobot_dnn.pyeasy_dnn (hbm.py: the newer
hbm_runtime).

Documented API (RDK docs, model zoo samples):
    models = pyeasy_dnn.load(path)          # list of Model
    m.inputs[0].properties.layout           # "NCHW" or "NHWC"
    m.inputs[0].properties.shape            # e.g. (1, 3, 224, 224)
    m.inputs[0].properties.tensor_type      # "NV12", ...
    outs = m.forward(nv12, core_id=0, priority=0)
    outs[0].buffer                          # numpy array of scores

The module is imported lazily (the PyPI wheel ships aarch64 libraries for Python 3.10
only). The compiled model holds mean/std; it takes the NV12 bytes as they are. Off the
board this adapter is tested against a fake module that follows the documented API.
The binary is reported to hold the GIL during forward(): several worker threads then
overlap only pre/post-processing; the BPU's own parallelism needs core_id per model.
"""
import importlib

import numpy as np

from .base import Backend, BackendError

MODULES = ('hobot_dnn.pyeasy_dnn', 'hobot_dnn_rdkx5.pyeasy_dnn')


def import_dnn():
    errors = []
    for name in MODULES:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f'{name}: {exc}')
        except Exception as exc:  # a broken install can raise OSError etc.
            errors.append(f'{name}: {type(exc).__name__}: {exc}')
    raise BackendError('the BPU backend needs the board\'s hobot_dnn Python API (RDK X5 image, '
                       'or `pip install hobot-dnn-rdkx5` on the board); not importable here: '
                       + '; '.join(errors) + '. Off the board use backend: onnxruntime')


class BoardBackend(Backend):
    """What both BPU adapters share (this one on hobot_dnn, hbm.py on hbm_runtime): the
    compiled model found (bpu_path, then the board's preinstalled models), its input size
    checked, and a description that says which runtime and which file, from where."""
    name = 'bpu'
    runtime = ''

    def __init__(self, cfg):
        super().__init__(cfg)
        self.model_path, self.found_in = cfg.bpu_model()

    def _require_file(self, path, key, looked=()):
        super()._require_file(path, key, looked or self.cfg.bpu_search_dirs())

    def _check_size(self, h, w, shape, layout='NCHW'):
        if (h, w) != (self.height, self.width):
            raise BackendError(f'{self.model_path}: model input is {w}x{h} ({layout} {shape}), '
                               f'the config expects {self.width}x{self.height}')

    def describe(self):
        where = f', from {self.found_in}' if self.found_in else ''
        return f'{self.name} ({self.runtime}) {self.model_path}{where}'


class BpuBackend(BoardBackend):
    runtime = 'hobot_dnn'

    def __init__(self, cfg):
        super().__init__(cfg)
        self.model = None

    def load(self):
        if self.loaded:
            return self
        try:
            dnn = import_dnn()
        except BackendError:
            from . import bpu_adapter
            bpu_adapter()   # neither runtime imports: its error names both
            raise
        self._require_file(self.model_path, 'bpu_path')
        try:
            models = dnn.load(str(self.model_path))
        except Exception as exc:
            raise BackendError(f'hobot_dnn cannot load {self.model_path}: {exc}') from exc
        if not models:
            raise BackendError(f'hobot_dnn loaded no model from {self.model_path}')
        self.model = models[0]
        props = self.model.inputs[0].properties
        tensor_type = str(props.tensor_type)
        if 'NV12' not in tensor_type.upper():
            raise BackendError(f'{self.model_path}: input tensor type is {tensor_type}, this '
                               f'package feeds NV12 (compile the model with input_type_rt: nv12)')
        shape = tuple(int(s) for s in props.shape)
        layout = str(props.layout).upper()
        if len(shape) != 4:
            raise BackendError(f'{self.model_path}: unexpected input shape {shape}')
        h, w = (shape[2], shape[3]) if layout == 'NCHW' else (shape[1], shape[2])
        self._check_size(h, w, shape, layout)
        self.loaded = True
        return self

    def infer(self, nv12_batch):
        if not self.loaded:
            raise BackendError('bpu backend used before load()')
        rows = []
        for nv12 in nv12_batch:
            outs = self.model.forward(np.ascontiguousarray(nv12), core_id=self.cfg.bpu_core_id,
                                      priority=self.cfg.bpu_priority)
            rows.append(np.array(outs[0].buffer, dtype=np.float32).reshape(-1))
        return self._check_output(np.stack(rows), len(rows))

    def close(self):
        self.model = None
        super().close()
