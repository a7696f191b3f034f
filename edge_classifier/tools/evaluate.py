"""Top-1 / top-5 accuracy over a labeled image set: float RGB path, NV12 path, int8 model.

    edge-classifier-eval IMAGES [--model NAME|YAML] [--int8 MODEL.onnx] [--json FILE]
    (also python -m edge_classifier.tools.evaluate)

IMAGES in one of the two layouts users have:
  * ImageNet-val style: image files and a val_label.txt of "filename label" lines (label =
    class index, as in the RDK zoo's deploy flow, or a class name of the labels file);
  * one sub-folder per class, named by class index ("282") or class name ("tiger cat",
    as in the labels file).
Columns, side by side on the same images:
  float RGB  resize / centre crop / normalize in RGB floats, no NV12 (the ONNX model's
             accuracy as trained);
  NV12       this package's path, the bytes the BPU gets (frame -> NV12 -> model);
  int8       the NV12 path on a quantized model (--int8, or <onnx>.int8.onnx when it
             exists; see edge-classifier-quantize).
An image that cannot be read, or a label line naming a missing file, is reported and
skipped; the run reports the rest.
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import DatasetError, Parser, cli
from ..config import load_config
from ..frames import FrameError, read_image
from ..pipeline import Classifier
from .quantize import int8_model_path


def cpu_description():
    """The CPU this ran on and what decides ONNX Runtime's int8 kernels: (name, features).
    Without VNNI, its uint8 x int8 kernels saturate on full-range int8 weights."""
    import platform
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            if key.strip() == 'model name':
                name = value.strip()
            elif key.strip() in ('flags', 'Features'):
                flags = set(value.split())
    except OSError:
        pass
    wanted = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'asimddp', 'i8mm')
    features = [f for f in wanted if f in flags]
    vnni = bool({'avx512_vnni', 'avx_vnni'} & flags)
    if 'avx2' in flags:
        kind = ('int8 kernels with VNNI' if vnni else
                'int8 kernels WITHOUT VNNI (full-range int8 weights saturate)')
    else:
        kind = 'not x86 AVX2' if flags else 'CPU features unknown'
    return name, f'{platform.machine()}, {", ".join(features) or "no AVX2"}: {kind}'


def load_dataset(folder, class_names=None):
    """[(path, label)] and [(what, reason)] problems, from either layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f'image folder {folder} does not exist')
    problems, items = [], []
    index = {name.lower(): i for i, name in enumerate(class_names or [])}
    label_file = folder / 'val_label.txt'
    if label_file.is_file():
        for n, line in enumerate(label_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(None, 1)
            label = parts[1].strip() if len(parts) == 2 else ''
            if label.isdigit():
                label = int(label)
            elif label.lower() in index:   # a class name, as in the labels file
                label = index[label.lower()]
            else:
                problems.append((f'{label_file}:{n}', f'expected "filename label" with the '
                                 f'label a class index (0..{max(len(index), 1000) - 1}) or a '
                                 f'class name of the labels file, got {line!r}'))
                continue
            path = folder / parts[0]
            if not path.is_file():
                problems.append((f'{label_file}:{n}', f'names {parts[0]}, which does not exist'))
                continue
            items.append((path, label))
        return items, problems
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not subdirs:
        raise DatasetError(f'{folder} has neither a val_label.txt nor one sub-folder per class')
    for sub in subdirs:
        if sub.name.isdigit():
            label = int(sub.name)
        elif sub.name.lower() in index:
            label = index[sub.name.lower()]
        else:
            problems.append((str(sub), 'folder name is neither a class index nor a class name'))
            continue
        for path in sorted(sub.iterdir()):
            if path.is_file():
                items.append((path, label))
    return items, problems


def float_rgb_scores(clf, bgr):
    """The reference float path: geometry as configured, RGB floats, no NV12
    (resize_crop and stretch; main() refuses letterbox before reading any image)."""
    cfg = clf.cfg
    h, w = bgr.shape[:2]
    (x, y, cw, ch), _ = clf.geometry.plan(w, h)
    roi = cv2.resize(bgr[y:y + ch, x:x + cw], (cfg.input_width, cfg.input_height),
                     interpolation=cv2.INTER_LINEAR)
    img = roi if cfg.channel_order == 'bgr' else cv2.cvtColor(roi, cv2.COLOR_BGR2RGB)
    blob = (img.astype(np.float32) - np.float32(cfg.mean)) / np.float32(cfg.std)
    return clf.backend.run_blob(np.ascontiguousarray(blob.transpose(2, 0, 1)[None]))[0]


def _rank(scores, label):
    order = np.argsort(-np.asarray(scores))
    hits = np.nonzero(order[:5] == label)[0]
    return int(hits[0]) if hits.size else 99


def evaluate(items, clf, int8=None, show_progress=True):
    paths = {'float RGB': [], 'NV12': []}
    if int8 is not None:
        paths['int8 NV12'] = []
    skipped = []
    for path, label in tqdm(items, desc='eval', unit='image', file=sys.stderr,
                            disable=None if show_progress else True, leave=False):
        try:
            frame = read_image(path)
        except FrameError as exc:
            skipped.append((str(path), str(exc)))
            continue
        nv12 = clf.convert(frame)
        paths['float RGB'].append(_rank(float_rgb_scores(clf, frame.data), label))
        paths['NV12'].append(_rank(clf.infer(nv12), label))
        if int8 is not None:
            paths['int8 NV12'].append(_rank(int8.infer(nv12), label))
    rows = []
    for name, ranks in paths.items():
        ranks = np.asarray(ranks)
        n = int(ranks.size)
        rows.append({'path': name, 'images': n,
                     'top1': float((ranks == 0).mean() * 100) if n else float('nan'),
                     'top5': float((ranks < 5).mean() * 100) if n else float('nan')})
    return rows, skipped


@cli('edge-classifier-eval')
def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('images', help='image folder (val_label.txt or one folder per class)')
    parser.add_argument('--model', default='efficientnet_lite0')
    parser.add_argument('--int8', help='quantized ONNX (default: <onnx>.int8.onnx if present)')
    parser.add_argument('--json', help='also write the rows as JSON')
    args = parser.parse_args(argv)
    cfg = load_config(args.model).replace(backend='onnxruntime')
    clf = Classifier(cfg)
    int8_path = Path(args.int8) if args.int8 else int8_model_path(cfg)
    int8 = None
    if args.int8 or int8_path.is_file():
        int8 = Classifier(cfg.replace(onnx_path=str(int8_path.resolve())))
    if cfg.resize_mode == 'letterbox':
        raise DatasetError('the float reference path supports resize_crop and stretch, '
                           f'not letterbox ({cfg.origin})')
    items, problems = load_dataset(args.images, clf.labels)
    for what, reason in problems:
        print(f'skipped {what}: {reason}', file=sys.stderr)
    if not items:
        raise DatasetError(f'no labeled images in {args.images}')
    rows, skipped = evaluate(items, clf, int8, show_progress=True)
    for what, reason in skipped:
        print(f'skipped {what}: {reason}', file=sys.stderr)
    weights = 'UNTRAINED weights: accuracy is meaningless' if clf.untrained else 'trained'
    cpu, features = cpu_description()
    print(f'# {cfg.model_name} on {args.images} ({weights}); ONNX Runtime on the CPU')
    print(f'# CPU: {cpu} ({features})')
    if int8 is not None:
        print(f'# int8 model: {int8_path} '
              f'({int8.backend.metadata.get("edge_classifier.quantization", "not tagged")})')
    print()
    print('| path | images | top-1 % | top-5 % |\n|---|---|---|---|')
    for row in rows:
        print(f'| {row["path"]} | {row["images"]} | {row["top1"]:.2f} | {row["top5"]:.2f} |')
    if problems or skipped:
        print(f'\n{len(problems) + len(skipped)} item(s) skipped (listed on stderr)')
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
