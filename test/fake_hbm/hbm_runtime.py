"""A fake of the RDK's hbm_runtime that follows its documented API exactly (the model zoo's
demos, ../shared/DESIGN.md "The RDK's two Python runtimes"):

    rt = HB_HBMRuntime(path)                     # or a list of files
    rt.model_names                               -> [name, ...]
    rt.input_names[name]                         -> [input, ...]
    rt.input_shapes[name][input]                 -> shape; index 2 and 3: H and W
    rt.output_names[name]                        -> [output, ...]
    rt.set_scheduling_params(priority={name: 0..255}, bpu_cores={name: [core, ...]})
    out = rt.run({name: {input: nv12}})          # uint8 NV12 packed as (1, H*3//2, W, 1)
    out[name][output]                            -> ndarray of scores, (1, classes)

A "compiled model" is the same JSON file the hobot_dnn fake reads (test/fake_bpu), run by
that fake's own Model (loaded from its file, so hobot_dnn itself stays unimportable here):
the two fakes give identical scores on the same NV12 bytes. run() checks its input as
strictly as the board: dtype, the packed shape, the model and input names. Calls are
recorded in CALLS and SCHEDULING for assertions.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location(
    '_fake_pyeasy_dnn', Path(__file__).resolve().parent.parent / 'fake_bpu' / 'hobot_dnn' /
    'pyeasy_dnn.py')
_pyeasy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pyeasy)

CALLS = []
SCHEDULING = []


class HB_HBMRuntime:  # noqa: N801 (the runtime's own name)
    def __init__(self, path):
        paths = path if isinstance(path, (list, tuple)) else [path]
        self._models = {}
        for file in paths:
            spec = json.loads(Path(file).read_text())
            model = _pyeasy.Model(spec)
            self._models[spec.get('name', Path(file).stem)] = model
        self.model_names = list(self._models)
        self.input_names = {n: ['images'] for n in self._models}
        self.output_names = {n: ['output'] for n in self._models}
        self.input_shapes = {n: {'images': tuple(m.inputs[0].properties.shape)}
                             for n, m in self._models.items()}
        self.output_shapes = {n: {'output': (1, m.outputs[0].properties.shape[1])}
                              for n, m in self._models.items()}

    def set_scheduling_params(self, priority=None, bpu_cores=None):
        for mapping in (priority or {}), (bpu_cores or {}):
            unknown = set(mapping) - set(self._models)
            if unknown:
                raise ValueError(f'unknown model(s) {sorted(unknown)}')
        for value in (priority or {}).values():
            if not 0 <= int(value) <= 255:
                raise ValueError(f'priority must be 0..255, got {value}')
        SCHEDULING.append({'priority': dict(priority or {}), 'bpu_cores': dict(bpu_cores or {})})

    def run(self, inputs):
        out = {}
        for name, tensors in inputs.items():
            model = self._models[name]                     # KeyError: not a loaded model
            (input_name, arr), = tensors.items()
            if input_name not in self.input_names[name]:
                raise KeyError(f'model {name} has no input {input_name}')
            _, _, h, w = self.input_shapes[name][input_name]
            arr = np.asarray(arr)
            if arr.dtype != np.uint8 or arr.shape != (1, h * 3 // 2, w, 1):
                raise ValueError(f'input {input_name} must be uint8 NV12 of shape '
                                 f'{(1, h * 3 // 2, w, 1)}, got {arr.dtype} {arr.shape}')
            CALLS.append({'model': name, 'input': input_name})
            scores = model.forward(arr.reshape(-1))[0].buffer
            out[name] = {'output': np.asarray(scores, np.float32).reshape(1, -1)}
        return out
