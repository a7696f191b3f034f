"""A fake of hobot_dnn.pyeasy_dnn that follows its documented API exactly:

    models = load(path)                      -> list of Model
    model.inputs[0].properties.layout        -> "NCHW" | "NHWC"
    model.inputs[0].properties.shape         -> tuple, e.g. (1, 3, 224, 224)
    model.inputs[0].properties.tensor_type   -> "NV12", ...
    outs = model.forward(nv12, core_id=0, priority=0)
    outs[0].buffer                           -> numpy array, e.g. (1, 1000, 1, 1) float32

A "compiled model" here is a JSON file naming an ONNX model and the normalization that
the RDK toolchain would compile in (mean, scale), plus the input properties. forward()
checks its input as the board does (uint8 NV12 of the model's size) and runs the ONNX
model with ONNX Runtime on NV12 -> RGB -> (x - mean) * scale, so results match a real
compiled float model up to quantization. Calls are recorded in CALLS for assertions.
Fault injection for robustness tests: "fail_first": N makes the first N forward() calls
raise, as a BPU timeout would; "delay_ms": D makes every forward() take D ms longer, a
slow model for flood tests; "bad_outputs": {"<call number>": "nan" | "shape"} makes those
forward() calls (1-based, warm-up included) return NaN scores, or 7 scores too many, as a
broken compiled model would. "zero_cpu": true (no "onnx" needed) makes forward() only check
its input, sleep delay_ms and return fixed scores ("num_classes" of them, 1000 by
default): a BPU stand-in that uses no CPU, for the node benchmark's measure of the node's
own cost (edge_classifier.tools.node_bench) and `edge-classifier-bench --backend bpu`.
"""
import json
import time

import cv2
import numpy as np

CALLS = []


class TensorProperties:
    def __init__(self, layout, shape, tensor_type):
        self.layout = layout
        self.shape = tuple(shape)
        self.tensor_type = tensor_type


class Tensor:
    def __init__(self, name, properties, buffer=None):
        self.name = name
        self.properties = properties
        self.buffer = buffer


class Model:
    def __init__(self, spec):
        import onnxruntime as ort
        self.name = spec.get('name', 'model')
        self._spec = spec
        self._session = (None if spec.get('zero_cpu') else
                         ort.InferenceSession(spec['onnx'], providers=['CPUExecutionProvider']))
        self.inputs = [Tensor('data', TensorProperties(spec.get('layout', 'NCHW'),
                                                       spec['shape'],
                                                       spec.get('tensor_type', 'NV12')))]
        classes = spec.get('num_classes', 1000)
        self.outputs = [Tensor('output', TensorProperties('NCHW', (1, classes, 1, 1), 'F32'))]

    def forward(self, input_tensor, core_id=0, priority=0):
        CALLS.append({'core_id': core_id, 'priority': priority})
        if len(CALLS) <= self._spec.get('fail_first', 0):
            raise RuntimeError(f'hbDNNInfer failed (fake fault {len(CALLS)})')
        time.sleep(self._spec.get('delay_ms', 0) / 1000.0)
        shape, layout = self.inputs[0].properties.shape, self.inputs[0].properties.layout
        h, w = (shape[2], shape[3]) if layout == 'NCHW' else (shape[1], shape[2])
        arr = np.asarray(input_tensor)
        if arr.dtype != np.uint8 or arr.size != h * w * 3 // 2:
            raise RuntimeError(f'input must be uint8 NV12 of {w}x{h} ({h * w * 3 // 2} bytes), '
                               f'got {arr.dtype} {arr.size}')
        if self._session is None:
            scores = np.zeros(self.outputs[0].properties.shape, np.float32)
            scores[0, int(arr[0]) % scores.shape[1]] = 10.0  # depends on the frame, cheap
        else:
            rgb = cv2.cvtColor(arr.reshape(h * 3 // 2, w),
                               cv2.COLOR_YUV2RGB_NV12).astype(np.float32)
            x = (rgb - np.float32(self._spec['mean'])) * np.float32(self._spec['scale'])
            scores = self._session.run(None, {self._session.get_inputs()[0].name:
                                              x.transpose(2, 0, 1)[None]})[0]
            scores = scores.reshape(1, -1, 1, 1).astype(np.float32)
        bad = self._spec.get('bad_outputs', {}).get(str(len(CALLS)))
        if bad == 'nan':
            scores = np.full_like(scores, np.nan)
        elif bad == 'shape':
            scores = np.zeros((1, scores.size + 7, 1, 1), np.float32)
        return [Tensor('output', self.outputs[0].properties, scores)]


def load(path):
    with open(path) as fh:
        spec = json.load(fh)
    return [Model(spec)]
