"""Node benchmark: classifier_node over real DDS vs the bare backend, in one run.

    python -m edge_classifier.tools.node_bench [--workers 1,2,4] [--seconds 10]
                                               [--rate 300] [--model efficientnet_lite0]
                                               [--overlay]

For each worker count: the bare backend's FPS with that many threads (inference only,
measured in this process), then classifier_node as a separate process fed by
sample_camera (640x480 bgr8, the bundled photos, published as fast as --rate allows,
i.e. well above the model's rate) while this process subscribes to /classification.
Prints classified FPS (messages received here), node/bare ratio, end-to-end latency
(receive time - source header stamp: camera publish -> DDS -> NV12 -> inference ->
publish -> DDS), and the node's own diagnostics (input FPS, drops). With --overlay, each
point runs twice in the same run, without and with a subscriber to classification/overlay
(640 px wide), to show what drawing the overlay costs classification.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification

from ..config import load_config
from ..errors import cli
from ..pipeline import Classifier
from ..ros_main import node_command
from .bench import bench_bare, progress


def _spawn(module, params, node_name=None):
    return subprocess.Popen(node_command(module, params, node_name), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return 'killed'


def run_node(node, model, workers, seconds, rate, warmup=3.0, overlay=False):
    topic = f'/nb{workers}/image'
    out_topic = f'/nb{workers}/classification'
    latencies, diags, overlays = [], [], []
    window = {'start': None, 'end': None}

    def on_result(msg):
        now = time.time()
        if window['start'] is not None and window['start'] <= now <= window['end']:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            latencies.append(now - stamp)

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith(f'nb{workers}'):
                diags.append({kv.key: kv.value for kv in status.values})

    subs = [node.create_subscription(Classification, out_topic, on_result, 100),
            node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)]
    if overlay:
        subs.append(node.create_subscription(
            Image, out_topic + '/overlay',
            lambda msg: overlays.append(1) if window['start'] is not None else None, 10))
    clf_proc = _spawn('edge_classifier.node', {
        'model': model, 'workers': workers, 'image_topics': f"['{topic}']",
        'output_topic': out_topic}, node_name=f'nb{workers}')
    cam = _spawn('edge_classifier.tools.sample_camera', {
        'topic': topic, 'width': 640, 'height': 480, 'rate': float(rate)})
    t_end_warm = time.monotonic() + warmup
    while time.monotonic() < t_end_warm:
        rclpy.spin_once(node, timeout_sec=0.05)
    window['start'] = time.time()
    window['end'] = window['start'] + seconds
    while time.time() < window['end']:
        rclpy.spin_once(node, timeout_sec=0.05)
    last = diags[-1] if diags else {}
    codes = (_stop(cam), _stop(clf_proc))
    if not latencies:
        print(f'no results: node stderr: {clf_proc.stderr.read()[-2000:]}', file=sys.stderr)
    for sub in subs:
        node.destroy_subscription(sub)
    lat = np.asarray(latencies) * 1e3 if latencies else np.array([np.nan])
    return {'fps': len(latencies) / seconds, 'e2e_p50': float(np.percentile(lat, 50)),
            'e2e_p99': float(np.percentile(lat, 99)),
            'input_fps': float(last.get('input_fps', 'nan')),
            'dropped': int(last.get('dropped', 0)), 'received': int(last.get('received', 0)),
            'overlay_fps': len(overlays) / seconds, 'exit': codes}


@cli('node_bench')
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='efficientnet_lite0')
    parser.add_argument('--workers', default='1,2,4')
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=300.0, help='camera rate asked (Hz)')
    parser.add_argument('--overlay', action='store_true',
                        help='also run each point with a classification/overlay subscriber')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

    clf = Classifier(load_config(args.model).replace(backend='onnxruntime'))
    rclpy.init()
    node = rclpy.create_node('node_bench')
    print(f'# classifier_node vs bare backend ({args.model}, ONNX Runtime on this CPU; camera '
          f'640x480 bgr8 asked at {args.rate:g} Hz; {args.seconds:g} s per point)\n')
    print('| workers | overlay subscriber | bare FPS | node classified FPS | node / bare | '
          'camera FPS at node | dropped (stale) | e2e p50 ms | e2e p99 ms | overlay FPS |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    try:
        for workers in [int(w) for w in args.workers.split(',') if w]:
            progress(f'[node_bench] {workers} workers: bare ...')
            bare = bench_bare(clf, workers, min(args.seconds, 5.0))
            for overlay in ((False, True) if args.overlay else (False,)):
                progress(f'[node_bench] {workers} workers: node'
                         f'{" with an overlay subscriber" if overlay else ""} ...')
                res = run_node(node, args.model, workers, args.seconds, args.rate,
                               overlay=overlay)
                ratio = res['fps'] / bare['fps'] if bare['fps'] else float('nan')
                print(f'| {workers} | {"yes" if overlay else "no"} | {bare["fps"]:.1f} | '
                      f'{res["fps"]:.1f} | {ratio:.3f} | {res["input_fps"]:.1f} | '
                      f'{res["dropped"]} of {res["received"]} | {res["e2e_p50"]:.1f} | '
                      f'{res["e2e_p99"]:.1f} | {res["overlay_fps"]:.1f} |', flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        clf.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
