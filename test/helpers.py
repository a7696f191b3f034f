"""Test helpers: tiny real ONNX models, processes over DDS, waiting on a condition."""
import json
import time
from pathlib import Path

import numpy as np


def wait_for(predicate, timeout=20.0, interval=0.005):
    """Poll `predicate` until it holds or `timeout` seconds pass (a bound, generous: a slow
    or busy machine passes); its last value. The one wait helper of the tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Log:
    """A logger stand-in that keeps what is logged as errors (the node passes its ROS
    logger)."""

    def __init__(self):
        self.errors = []

    def error(self, text):
        self.errors.append(text)


def tiny_onnx(path, size=32, classes=10, weights='untrained', batch='N', seed=0):
    """A real (tiny) classifier: mean colour -> linear layer -> scores. Written with onnx."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(3, classes)).astype(np.float32), 'w')
    b = numpy_helper.from_array(np.zeros(classes, np.float32), 'b')
    graph = helper.make_graph(
        [helper.make_node('GlobalAveragePool', ['input'], ['pooled']),
         helper.make_node('Flatten', ['pooled'], ['flat']),
         helper.make_node('Gemm', ['flat', 'w', 'b'], ['logits'])],
        'tiny', [helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                               [batch, 3, size, size])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [batch, classes])],
        initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    if weights:
        entry = model.metadata_props.add()
        entry.key, entry.value = 'edge_classifier.weights', weights
    onnx.save(model, str(path))
    return path


def tiny_config(tmp_path, size=32, classes=10, **changes):
    """A ModelConfig for a tiny model in tmp_path (labels written too)."""
    from edge_classifier.config import from_dict
    tiny_onnx(tmp_path / 'tiny.onnx', size, classes)
    (tmp_path / 'labels.txt').write_text(''.join(f'class {i}\n' for i in range(classes)))
    data = dict(model_name='tiny', onnx_path='tiny.onnx', bpu_path='tiny.bin',
                labels_path='labels.txt', models_dir=str(tmp_path), input_width=size,
                input_height=size, resize_short_side=0, num_classes=classes, top_k=3,
                backend='onnxruntime')
    data.update(changes)
    return from_dict(data, origin=str(tmp_path / 'tiny.yaml'))


def write_params_file(cfg, path):
    """cfg as a model YAML in ROS 2 params-file form, as config/*.yaml are; returns path."""
    import yaml
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': cfg.to_dict()}}))
    return path


FAKE_BPU = str(Path(__file__).resolve().parent / 'fake_bpu')   # hobot_dnn (pyeasy_dnn)
FAKE_HBM = str(Path(__file__).resolve().parent / 'fake_hbm')   # hbm_runtime


def compiled_model(path, onnx_path, cfg, **overrides):
    """A fake .bin: the ONNX model with mean/scale 'compiled in', as the toolchain does."""
    spec = {'onnx': str(onnx_path), 'mean': cfg.mean, 'scale': [1.0 / s for s in cfg.std],
            'layout': 'NCHW', 'shape': [1, 3, cfg.input_height, cfg.input_width],
            'tensor_type': 'NV12'}
    spec.update(overrides)
    Path(path).write_text(json.dumps(spec))
    return path
