"""RDK X5 BPU through hbm_runtime, the runtime of the RDK model zoo's current demos (a board
may have it and not hobot_dnn; `backend: bpu` takes whichever imports, hobot_dnn first).

Documented API (D-Robotics rdk_model_zoo demos, e.g. demos/classification/EdgeNeXt):
    rt = HB_HBMRuntime(path)                     # or a list of files
    name = rt.model_names[0]
    rt.input_names[name]                         # [input, ...]
    rt.input_shapes[name][input]                 # index 2 and 3: H and W
    rt.output_names[name]                        # [output, ...]
    rt.set_scheduling_params(priority={name: 0..255}, bpu_cores={name: [core, ...]})
    out = rt.run({name: {input: nv12}})          # NV12: uint8 (1, H*3//2, W, 1), Y then UV
    out[name][output]                            # ndarray of scores (softmax on the host)

bpu_priority maps to `priority`; bpu_core_id to `bpu_cores` as hobot_dnn counts cores
(0 = any core: not set, the runtime chooses; n = the n-th core, [n - 1]). Imported lazily;
off the board tested against a fake module that follows the documented API.
"""
import importlib

import numpy as np

from .base import BackendError
from .bpu import BoardBackend

MODULE = 'hbm_runtime'


def import_hbm():
    try:
        return importlib.import_module(MODULE)
    except ImportError as exc:
        raise BackendError(f'{MODULE}: {exc}') from exc
    except Exception as exc:  # a broken install can raise OSError etc.
        raise BackendError(f'{MODULE}: {type(exc).__name__}: {exc}') from exc


class HbmBackend(BoardBackend):
    runtime = MODULE

    def __init__(self, cfg):
        super().__init__(cfg)
        self.rt = None
        self.model_name = self.input_name = self.output_name = None

    def load(self):
        if self.loaded:
            return self
        hbm = import_hbm()
        self._require_file(self.model_path, 'bpu_path')
        try:
            rt = hbm.HB_HBMRuntime(str(self.model_path))
        except Exception as exc:
            raise BackendError(f'hbm_runtime cannot load {self.model_path}: {exc}') from exc
        names = list(rt.model_names)
        if not names:
            raise BackendError(f'hbm_runtime loaded no model from {self.model_path}')
        name = names[0]
        inputs, outputs = list(rt.input_names[name]), list(rt.output_names[name])
        if len(inputs) != 1 or not outputs:
            raise BackendError(f'{self.model_path}: model {name} has inputs {inputs} and '
                               f'outputs {outputs}; this package feeds one NV12 input')
        shape = tuple(int(s) for s in rt.input_shapes[name][inputs[0]])
        if len(shape) != 4:
            raise BackendError(f'{self.model_path}: unexpected input shape {shape}')
        self._check_size(shape[2], shape[3], shape)
        scheduling = {'priority': {name: self.cfg.bpu_priority}}
        if self.cfg.bpu_core_id:
            scheduling['bpu_cores'] = {name: [self.cfg.bpu_core_id - 1]}
        try:
            rt.set_scheduling_params(**scheduling)
        except Exception as exc:
            raise BackendError(f'hbm_runtime refused the scheduling parameters {scheduling} '
                               f'(bpu_priority, bpu_core_id): {exc}') from exc
        self.rt, self.model_name = rt, name
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.loaded = True
        return self

    def infer(self, nv12_batch):
        if not self.loaded:
            raise BackendError('bpu backend used before load()')
        packed = (1, self.height * 3 // 2, self.width, 1)
        rows = []
        for nv12 in nv12_batch:
            out = self.rt.run({self.model_name: {
                self.input_name: np.ascontiguousarray(nv12).reshape(packed)}})
            rows.append(np.asarray(out[self.model_name][self.output_name],
                                   dtype=np.float32).reshape(-1))
        return self._check_output(np.stack(rows), len(rows))

    def close(self):
        self.rt = None
        super().close()
