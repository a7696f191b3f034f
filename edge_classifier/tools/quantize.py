"""ONNX Runtime static int8 quantization, calibrated through the NV12 path.

    edge-classifier-quantize CALIB_DIR [--model NAME|YAML] [--count 1000] [--out FILE]
    (also python -m edge_classifier.tools.quantize)

Calibration images (any image files under CALIB_DIR, labels not needed; the RDK zoo picks
about 1000 covering every class: take what is given) go through exactly the node's path
(frame -> NV12 -> NV12->RGB -> normalize), so the activation ranges are those the BPU's
input produces. Writes <onnx>.int8.onnx next to the float model (QDQ format, per-channel
int8 weights, uint8 activations, MinMax calibration); edge-classifier-eval then reports
float vs int8 accuracy side by side, like the zoo's float / quantized columns.

Weights use 7 of their 8 bits (ONNX Runtime's reduce_range), so the model computes the same
numbers on every x86 CPU: ONNX Runtime's uint8 x int8 kernels on AVX2 and AVX-512 CPUs
without VNNI add pairs of products into 16 bits (VPMADDUBSW), which saturates with full-range
weights (its quantization docs); with VNNI they do not. Measured on 800 real ImageNet photos
on an AVX2 CPU without VNNI: full range 81.88 % top-1, reduce_range 87.25 %, NV12 float
87.75 %. A board simulation must not depend on the host: --full-range only where you know
every machine has VNNI.
"""
import sys
from pathlib import Path

from tqdm import tqdm

from ..errors import Parser, QuantizeError, cli
from ..config import load_config
from ..frames import IMAGE_SUFFIXES, FrameError, read_image
from ..pipeline import Classifier


REDUCED = '7-bit weights (reduce_range): the same on every x86 CPU'


def int8_model_path(cfg):
    """Where the quantized model of a config lives: <onnx>.int8.onnx next to the float one."""
    return cfg.resolve(cfg.onnx_path).with_suffix('.int8.onnx')


def calibration_images(folder, count):
    folder = Path(folder)
    if not folder.is_dir():
        raise QuantizeError(f'calibration folder {folder} does not exist')
    paths = sorted(p for p in folder.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise QuantizeError(f'no images ({", ".join(IMAGE_SUFFIXES)}) under {folder}')
    return paths[:count]


def quantize(clf, paths, out, show_progress=True, reduce_range=True):
    """Static int8 quantization of clf's ONNX model; returns (out, used, skipped).
    reduce_range: 7-bit weights, the same results on CPUs with and without VNNI."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    backend = clf.backend
    skipped, used = [], []
    bar = tqdm(total=len(paths), desc='quantize', unit='image', file=sys.stderr,
               disable=None if show_progress else True, leave=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.paths = iter(paths)

        def get_next(self):
            for path in self.paths:
                bar.update()
                try:
                    frame = read_image(path)
                except FrameError as exc:
                    skipped.append((str(path), str(exc)))
                    continue
                used.append(path)
                return {backend.input_name: backend.preprocess([clf.convert(frame)]).copy()}
            return None

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + '.partial')
    try:
        quantize_static(str(backend.model_path), str(tmp), Reader(),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=reduce_range, calibrate_method=CalibrationMethod.MinMax)
    finally:
        bar.close()
    if not used:
        tmp.unlink(missing_ok=True)
        raise QuantizeError('none of the calibration images could be read')
    weights = REDUCED if reduce_range else 'full-range int8 weights (exact only with VNNI)'
    _tag(tmp, f'int8 static (QDQ, {weights}), {len(used)} calibration images through NV12')
    tmp.replace(out)
    return out, used, skipped


def _tag(path, text):
    import onnx
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = 'edge_classifier.quantization', text
    onnx.save(model, str(path))


@cli('edge-classifier-quantize')
def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('calib', help='folder of calibration images (searched recursively)')
    parser.add_argument('--model', default='efficientnet_lite0')
    parser.add_argument('--count', type=int, default=1000, help='at most this many images')
    parser.add_argument('--out', help='output ONNX (default: <onnx>.int8.onnx)')
    parser.add_argument('--full-range', action='store_true',
                        help='8-bit weights: exact only on CPUs with VNNI (AVX512-VNNI, '
                             'AVX-VNNI); on others ONNX Runtime saturates (default: 7-bit '
                             'weights, the same results on every CPU)')
    args = parser.parse_args(argv)
    cfg = load_config(args.model).replace(backend='onnxruntime')
    clf = Classifier(cfg)
    paths = calibration_images(args.calib, args.count)
    out = Path(args.out) if args.out else int8_model_path(cfg)
    out, used, skipped = quantize(clf, paths, out, reduce_range=not args.full_range)
    for what, reason in skipped:
        print(f'skipped {what}: {reason}', file=sys.stderr)
    print(f'wrote {out} (calibrated on {len(used)} images, {len(skipped)} skipped)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
