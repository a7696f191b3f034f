"""Benchmark: bare backend vs the full pipeline, and NV12 conversion vs the RDK helper.

    edge-classifier-bench [--model efficientnet_lite0 ...] [--workers 1,2,4,8]
                          [--seconds 10] [--rounds 5] [--json FILE]
    edge-classifier-bench --two-stage [--boxes 1,4,16] [--workers 2] [--seconds 10]
    (also python -m edge_classifier.tools.bench)

Measured in one run, with ONNX Runtime on this machine's CPU (--backend bpu on the board):
  * bare: N threads calling the backend on one NV12 buffer of the model's input size
    (Classifier.infer: what the BPU takes; ONNX Runtime's NV12 -> RGB -> normalize is part
    of it, as it is part of that backend), intra-op threads from the config;
  * pipeline: the WorkerPool with N workers, fed 640x480 bgr8 sensor_msgs/Image bytes by
    N + 1 sources in a closed loop (a result triggers that source's next frame), so a frame
    always waits, as under a camera faster than the model: every frame goes frame -> NV12
    -> backend -> top-k exactly as in the node, conversion overlapping inference;
  * NV12: bgr_to_nv12 vs the RDK zoo's bgr2nv12_opencv on the same 224x224 BGR image, and
    the whole to_nv12 (crop + resize + convert) of a 640x480 frame.
--two-stage: a detector's boxes (the tiles of a 1x1, 2x2 or 4x4 grid over a 640x480 bgr8
frame), with the 2 ms BPU stand-in (test/fake_bpu, no CPU: the pipeline's own cost) and
with EfficientNet-Lite0 on ONNX Runtime: one camera in a closed loop through the WorkerPool
(crops fan out to the workers), against the same crops classified one by one with
Classifier.classify in a loop (what a user writes first). Boxes per second and frame
latency (frame in -> every box classified).
Bare and pipeline alternate in short rounds (drift on a shared VM then hits both); each
figure is the median over the rounds, and pipeline / bare is the ratio of those medians.
"""
import json
import statistics
import sys
import threading
import time

import cv2
import numpy as np
from tqdm import tqdm

from .. import resources
from ..config import load_config
from ..params import BACKENDS
from .encode import encode_raw
from ..errors import EdgeClassifierError, Parser, cli
from ..frames import image_to_frame
from ..nv12 import Geometry, bgr_to_nv12, to_nv12
from .rdk_nv12 import rdk_bgr2nv12
from ..boxes import crop
from ..pipeline import Classifier
from ..pool import WorkerPool


def count_parameters(onnx_path):
    """Parameters (millions) of an ONNX model: the sum of its initializers' sizes."""
    try:
        import onnx
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # onnx not installed, or not readable: the column says so
        return float('nan')
    total = 0
    for tensor in model.graph.initializer:
        size = 1
        for dim in tensor.dims:
            size *= dim
        total += size
    return total / 1e6


def _percentiles(samples):
    if not samples:
        return float('nan'), float('nan')
    arr = np.asarray(samples) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _test_image():
    paths = resources.sample_images()
    if paths:
        image = cv2.imread(str(paths[0]), cv2.IMREAD_COLOR)
    else:
        image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    return cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA)


def bench_bare(clf, workers, seconds, warmup=0.3):
    """N threads on Classifier.infer (the backend alone) with one prepared NV12 input."""
    nv12 = clf.convert(image_to_frame('bgr8', 480, 640, 1920, _test_image().tobytes()))
    latencies, lock = [], threading.Lock()
    start = threading.Barrier(workers + 1)
    stop_at = [0.0]

    def run():
        mine = []
        try:
            start.wait()
        except threading.BrokenBarrierError:   # interrupted before the start
            return
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at[0]:
                break
            clf.infer(nv12)
            mine.append((t0, time.perf_counter() - t0))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    [t.start() for t in threads]
    t_start = time.perf_counter()
    stop_at[0] = t_start + warmup + seconds
    try:
        start.wait()
        time.sleep(max(0.0, stop_at[0] - time.perf_counter()))
    finally:
        # Ctrl-C: the threads end after their current inference, then we go. (They are
        # joined only here: a join that Ctrl-C interrupts can leave a thread that is still
        # inside the runtime looking finished, and Python's exit then aborts.)
        stop_at[0] = min(stop_at[0], time.perf_counter())
        start.abort()
        [t.join() for t in threads]
    measured = [lat for t0, lat in latencies if t0 >= t_start + warmup]
    p50, p99 = _percentiles(measured)
    return {'fps': len(measured) / seconds, 'latency_ms_p50': p50, 'latency_ms_p99': p99}


def bench_pipeline(clf, workers, seconds, warmup=0.3, boxes=None, convert_ahead=True):
    """The WorkerPool in a closed loop (a result triggers its source's next frame): N + 1
    cameras, so a frame always waits; with `boxes`, one camera with its detector (the
    frame's boxes fan out to the workers)."""
    raw = encode_raw(_test_image(), 'bgr8')
    data = raw.data
    t_start = time.perf_counter()
    measure_from = t_start + warmup
    stop_at = measure_from + seconds
    done = []
    pool = None

    def make_frame():
        return image_to_frame('bgr8', raw.height, raw.width, raw.step, data)

    def on_result(result):
        now = time.perf_counter()
        if now >= measure_from:
            done.append(result.end_to_end_s)
        if now < stop_at:
            pool.submit(result.source, make_frame, boxes=get_boxes)

    get_boxes = None if boxes is None else (lambda: boxes)
    pool = WorkerPool(clf, workers, on_result=on_result, convert_ahead=convert_ahead).start()
    try:
        # one more camera than the workers (a frame always waits), or one with its detector
        for i in range(workers + 1 if boxes is None else 1):
            pool.submit(f'/camera_{i}', make_frame, boxes=get_boxes)
        time.sleep(max(0.0, stop_at - time.perf_counter()))
    finally:   # also on Ctrl-C: no thread may be inside the runtime when Python exits
        pool.stop()
    p50, p99 = _percentiles(done)
    return {'fps': len(done) / seconds, 'latency_ms_p50': p50, 'latency_ms_p99': p99}


def grid_boxes(n, width=640, height=480):
    """n boxes (1, 4, 16, ...: a square number) tiling a width x height frame."""
    side = int(round(n ** 0.5))
    if side * side != n:
        raise EdgeClassifierError(f'--boxes: {n} is not a square number (1, 4, 9, 16, ...)')
    w, h = width / side, height / side
    return np.array([((c + 0.5) * w, (r + 0.5) * h, w, h)
                     for r in range(side) for c in range(side)])


def bench_boxes_pipeline(clf, workers, boxes, seconds):
    """bench_pipeline with one camera and its detector, in boxes per second."""
    fig = bench_pipeline(clf, workers, seconds, boxes=boxes)
    return {'boxes_per_s': fig['fps'] * len(boxes), 'frame_ms_p50': fig['latency_ms_p50'],
            'frame_ms_p99': fig['latency_ms_p99']}


def bench_boxes_loop(clf, boxes, seconds, warmup=0.3):
    """The same crops classified one by one with Classifier.classify, frame after frame."""
    raw = encode_raw(_test_image(), 'bgr8')
    plan = None
    times = []
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        if t0 >= t_start + warmup + seconds:
            break
        frame = image_to_frame('bgr8', raw.height, raw.width, raw.step, raw.data)
        if plan is None:
            plan, _ = clf.convert_boxes(frame, boxes)
        for _, rect in plan.kept:
            clf.classify(crop(frame, rect))
        if t0 >= t_start + warmup:
            times.append(time.perf_counter() - t0)
    p50, p99 = _percentiles(times)
    return {'boxes_per_s': len(times) * len(boxes) / seconds, 'frame_ms_p50': p50,
            'frame_ms_p99': p99}


def two_stage(args, worker_counts):
    """The --two-stage table, printed; its rows."""
    from .node_bench import StandIn
    print('| model | workers | boxes per frame | loop boxes/s | loop frame p50 ms | '
          'pipeline boxes/s | pipeline frame p50 ms | pipeline frame p99 ms | '
          'boxes/s pipeline / loop |')
    print('|---|---|---|---|---|---|---|---|---|')
    counts = [int(n) for n in args.boxes.split(',') if n]
    stand_in = StandIn(2.0)
    sys.path.insert(0, str(stand_in.fake))  # the fake hobot_dnn (source checkout)
    cfg = load_config('efficientnet_lite0')
    models = [('BPU stand-in (2 ms, no CPU)', cfg.replace(backend='bpu',
                                                          bpu_path=str(stand_in.bin))),
              (f'{cfg.model_name} (ONNX Runtime)', cfg.replace(backend='onnxruntime'))]
    rows = []
    bar = tqdm(total=len(models) * len(worker_counts) * len(counts) * args.rounds,
               desc='two-stage', file=sys.stderr, leave=False, disable=None)
    for name, model_cfg in models:
        clf = Classifier(model_cfg)
        for workers in worker_counts:
            for n in counts:
                boxes = grid_boxes(n)
                loops, pipes = [], []
                for _ in range(args.rounds):
                    loops.append(bench_boxes_loop(clf, boxes, args.seconds / args.rounds))
                    pipes.append(bench_boxes_pipeline(clf, workers, boxes,
                                                      args.seconds / args.rounds))
                    bar.update()
                loop, pipe = _median_round(loops), _median_round(pipes)
                ratio = pipe['boxes_per_s'] / loop['boxes_per_s'] if loop['boxes_per_s'] \
                    else float('nan')
                print(f'| {name} | {workers} | {n} | {loop["boxes_per_s"]:.1f} | '
                      f'{loop["frame_ms_p50"]:.2f} | {pipe["boxes_per_s"]:.1f} | '
                      f'{pipe["frame_ms_p50"]:.2f} | {pipe["frame_ms_p99"]:.2f} | '
                      f'{ratio:.2f} |', flush=True)
                rows.append({'model': name, 'workers': workers, 'boxes': n,
                             **{f'loop_{k}': v for k, v in loop.items()},
                             **{f'pipeline_{k}': v for k, v in pipe.items()}})
        clf.close()
    bar.close()
    return rows


def _median_round(rounds):
    """Per figure, the median over the alternating rounds."""
    return {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]}


def bench_nv12(repeats=300):
    image = _test_image()
    small = np.ascontiguousarray(cv2.resize(image, (224, 224)))
    out = np.empty(224 * 224 * 3 // 2, np.uint8)
    frame = image_to_frame('bgr8', 480, 640, 1920, image.tobytes())
    geometry = Geometry(224, 224)
    rows = []
    for name, fn in (('RDK bgr2nv12_opencv (224x224 BGR)', lambda: rdk_bgr2nv12(small)),
                     ('edge_classifier bgr_to_nv12 (224x224 BGR)',
                      lambda: bgr_to_nv12(small, out=out)),
                     ('edge_classifier to_nv12 (640x480 bgr8 frame: crop+resize+NV12)',
                      lambda: to_nv12(frame, geometry, out=out))):
        for _ in range(20):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        rows.append((name, statistics.median(times) * 1e6))
    return rows


@cli('edge-classifier-bench')
def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', nargs='+', default=['efficientnet_lite0'])
    parser.add_argument('--workers', default=None,
                        help='worker counts (default 1,2,4,8; with --two-stage 2)')
    parser.add_argument('--seconds', type=float, default=10.0,
                        help='measuring time per model and worker count, for each mode')
    parser.add_argument('--rounds', type=int, default=5,
                        help='bare and pipeline alternate in this many rounds')
    parser.add_argument('--json', help='also write the rows as JSON to this file')
    parser.add_argument('--two-stage', action='store_true',
                        help='benchmark classifying a detector\'s boxes instead (one camera, '
                             '640x480, the 2 ms BPU stand-in and EfficientNet-Lite0)')
    parser.add_argument('--boxes', default='1,4,16',
                        help='with --two-stage: boxes per frame (square numbers)')
    parser.add_argument('--stand-in', type=float, metavar='MS',
                        help='instead of the model: a BPU stand-in that takes MS ms per '
                             'inference and no CPU (the board\'s case, on any machine)')
    parser.add_argument('--no-convert-ahead', action='store_true',
                        help='the pipeline without its converter thread (what it buys)')
    parser.add_argument('--backend', choices=BACKENDS, default='onnxruntime',
                        help='onnxruntime (any machine), bpu (the board: hobot_dnn and the '
                             'compiled .bin), auto (as the config says)')
    args = parser.parse_args(argv)
    workers = args.workers or ('2' if args.two_stage else '1,2,4,8')
    worker_counts = [int(w) for w in workers.split(',') if w]
    if args.two_stage:
        print(f'# edge_classifier two-stage benchmark: boxes of one 640x480 bgr8 camera '
              f'({args.seconds:g} s per point and mode in {args.rounds} alternating rounds; '
              f'medians over rounds)\n')
        rows = two_stage(args, worker_counts)
        if args.json:
            with open(args.json, 'w') as fh:
                json.dump(rows, fh, indent=1)
        return 0

    rows, summary = [], []
    classifiers = load_all(args.model, args.backend, args.stand_in)
    what = ('ONNX Runtime on this CPU, not BPU figures' if args.backend == 'onnxruntime'
            else f'backend {args.backend}')
    if args.stand_in is not None:
        what = (f'a {args.stand_in:g} ms BPU stand-in (the fake hobot_dnn: sleeps, no CPU), '
                f'the board\'s case')
    print(f'# edge_classifier benchmark: {what} '
          f'({args.seconds:g} s per point and mode in {args.rounds} alternating rounds; '
          f'medians over rounds; input 640x480 bgr8 for the pipeline)\n')
    print('| model | workers | bare p50 ms | bare p99 ms | bare FPS | pipeline p50 ms | '
          'pipeline p99 ms | pipeline FPS | pipeline / bare |')
    print('|---|---|---|---|---|---|---|---|---|')
    bar = tqdm(total=len(args.model) * len(worker_counts) * args.rounds, desc='bench',
               file=sys.stderr, leave=False, disable=None)
    try:
        for name, clf in classifiers:
            name = clf.cfg.model_name + (' (untrained)' if clf.untrained else '')
            if args.stand_in is not None:
                name = f'{args.stand_in:g} ms BPU stand-in'
            per_workers = {}
            for workers in worker_counts:
                bare_rounds, pipe_rounds = [], []
                bar.set_postfix_str(f'{name}, {workers} workers')
                for _ in range(args.rounds):  # alternate, so drift on a shared VM hits both
                    bare_rounds.append(bench_bare(clf, workers, args.seconds / args.rounds))
                    pipe_rounds.append(bench_pipeline(clf, workers, args.seconds / args.rounds,
                                                      convert_ahead=not args.no_convert_ahead))
                    bar.update()
                bare, pipe = _median_round(bare_rounds), _median_round(pipe_rounds)
                per_workers[workers] = (bare, pipe)
                ratio = pipe['fps'] / bare['fps'] if bare['fps'] else float('nan')
                print(f'| {name} | {workers} | {bare["latency_ms_p50"]:.2f} | '
                      f'{bare["latency_ms_p99"]:.2f} | {bare["fps"]:.1f} | '
                      f'{pipe["latency_ms_p50"]:.2f} | {pipe["latency_ms_p99"]:.2f} | '
                      f'{pipe["fps"]:.1f} | {ratio:.3f} |', flush=True)
                for mode, fig in (('bare', bare), ('pipeline', pipe)):
                    rows.append({'model': name, 'workers': workers, 'mode': mode, **fig})
            best = max(per_workers, key=lambda w: per_workers[w][0]['fps'])
            single = per_workers.get(1, per_workers[min(per_workers)])[0]
            summary.append((name, f'{clf.cfg.input_width}x{clf.cfg.input_height}',
                            clf.cfg.num_classes,
                            count_parameters(getattr(clf.backend, 'model_path', '')),
                            single['latency_ms_p50'], per_workers[best][0]['latency_ms_p50'],
                            best, per_workers[best][0]['fps'], per_workers[best][1]['fps']))
            clf.close()
    finally:   # also on Ctrl-C: sessions freed while Python runs (not in its exit)
        for _, clf in classifiers:
            clf.close()
    print('\n| model | size | classes | params (M) | single-thread latency ms | '
          'multi-thread latency ms | FPS (bare) | FPS (pipeline) |')
    print('|---|---|---|---|---|---|---|---|')
    for name, size, classes, params, single, multi, best, fps, pipe_fps in summary:
        print(f'| {name} | {size} | {classes} | {params:.2f} | {single:.2f} | '
              f'{multi:.2f} ({best} threads) | {fps:.1f} | {pipe_fps:.1f} |')
    bar.set_postfix_str('NV12 conversion')
    nv12 = bench_nv12()
    bar.close()
    base = nv12[0][1]
    print('\n| NV12 conversion | median µs | vs RDK helper |\n|---|---|---|')
    print(f'| {nv12[0][0]} | {base:.1f} | baseline |')
    print(f'| {nv12[1][0]} | {nv12[1][1]:.1f} | {base / nv12[1][1]:.2f}x faster, same bytes |')
    print(f'| {nv12[2][0]} | {nv12[2][1]:.1f} | (the node\'s whole conversion) |')
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(rows, fh, indent=1)
    return 0


def load_all(names, backend, stand_in=None):
    """[(name, Classifier)] for every model, or one error naming each model that cannot
    be loaded (and what makes it), before anything is measured."""
    loaded, failed = [], []
    if stand_in is not None:
        from .node_bench import StandIn
        stand = StandIn(stand_in)
        sys.path.insert(0, str(stand.fake))   # the fake hobot_dnn (source checkout)
    for name in names:
        try:
            cfg = load_config(name)
            if stand_in is not None:
                cfg = cfg.replace(backend='bpu', bpu_path=str(stand.bin))
            elif backend != 'auto':
                cfg = cfg.replace(backend=backend)
            loaded.append((name, Classifier(cfg)))
        except EdgeClassifierError as exc:
            failed.append(f'  {name}: {exc}')
    if failed:
        for _, clf in loaded:
            clf.close()
        raise EdgeClassifierError(f'{len(failed)} of {len(names)} model(s) cannot be '
                                  f'benchmarked; nothing was measured:\n' + '\n'.join(failed))
    return loaded


if __name__ == '__main__':
    sys.exit(main())
