"""Node benchmark: classifier_node over real DDS against its baselines, in one run.

    python -m edge_classifier.tools.node_bench [--seconds 20] [--rounds 2]
                                               [--rates 30,flood] [--cameras-seconds 60]
                                               [--overlay] [--web] [--max-rate HZ]

Every case is a separate node process fed by sample_camera (640x480 bgr8, the bundled
photos) while this process subscribes to its output; cases alternate within each round
(drift on a shared VM hits all alike) and each figure is the median over the rounds.

  floor            rclpy's floor: a node that only receives the Image and publishes a
                   Classification (tools/baselines.py)
  stand-in         classifier_node, 2 workers, on a BPU stand-in that sleeps 2 ms and uses
                   no CPU (test/fake_bpu's hobot_dnn, zero_cpu): the node's own cost
  naive            what a user writes first: inference in the callback, default QoS, default
                   ONNX Runtime session, EfficientNet-Lite0 (tools/baselines.py)
  classifier_node  EfficientNet-Lite0, 2 workers, ONNX Runtime (the package's defaults)

Columns: classified fps (messages received here), CPU ms per classified frame of the node
process (utime + stime from /proc, over the window), end-to-end p50/p99 (receive time here
- the camera's header stamp: publish -> DDS -> node -> DDS). `flood` asks the camera for
300 Hz (it publishes as fast as it can). Then four 30 Hz cameras into one node (stand-in
and Lite0): per-camera classified fps, RSS at start and end, e2e p99, and the node's
per-source received counts (from its diagnostics), which tell delivery from serving.
With --overlay, classifier_node also runs with a classification/overlay subscriber; with
--web, with web_view and a client reading its live stream as a browser does (the web
view's cost: its CPU per classified frame is in its own column). With --max-rate HZ,
classifier_node also runs with max_rate:=HZ (what the rate budget saves: the last column,
the node's CPU over the window as a share of one core, against the unthrottled row).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from tqdm import tqdm
from vision_msgs.msg import Classification

from .. import resources
from ..config import load_config
from ..errors import EdgeClassifierError, Parser, cli
from ..ros_main import init_tool, shutdown_rclpy, spin_once
from . import node_command, spawn
from ..wiring.diagnostics import BOOKS_KEY, node_of

FLOOD_HZ = 300.0
CASES = ('floor', 'stand-in', 'naive', 'classifier_node')
_TICK = os.sysconf('SC_CLK_TCK')


def _spawn(cmd, env=None):
    return spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                 env=None if env is None else {**os.environ, **env})


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return 'killed'


def _cpu_s(pid):
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss_mib(pid):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


class StandIn:
    """A zero-CPU 'compiled model' for the fake hobot_dnn (source checkout only), shaped
    like `cfg`'s model (EfficientNet-Lite0 by default)."""

    def __init__(self, delay_ms=2.0, cfg=None):
        root = resources.source_root()
        self.fake = root / 'test' / 'fake_bpu' if root else None
        if self.fake is None or not (self.fake / 'hobot_dnn').is_dir():
            raise EdgeClassifierError('the BPU stand-in needs a source checkout (test/fake_bpu)')
        self.dir = tempfile.TemporaryDirectory(prefix='node_bench_')
        cfg = cfg or load_config('efficientnet_lite0')
        self.bin = Path(self.dir.name) / 'stand_in.bin'
        self.bin.write_text(json.dumps({
            'zero_cpu': True, 'delay_ms': delay_ms, 'layout': 'NCHW', 'tensor_type': 'NV12',
            'num_classes': cfg.num_classes, 'shape': [1, 3, cfg.input_height, cfg.input_width]}))

    def env(self):
        return {'PYTHONPATH': os.pathsep.join(filter(None, [str(self.fake),
                                                            os.environ.get('PYTHONPATH')]))}


def _node(case, inputs, output, stand_in, name, extra=None):
    """argv and env of one case's node process (`extra`: classifier_node parameters)."""
    if case in ('floor', 'naive'):
        cmd = [sys.executable, '-m', 'edge_classifier.tools.baselines', case, '--ros-args',
               '--log-level', 'warn', '-r', f'__node:={name}', '-p', f'input:={inputs[0]}',
               '-p', f'output:={output}']
        return cmd, None
    params = {'workers': 2, 'image_topics': json.dumps(inputs), 'output_topic': output}
    env = None
    if case == 'stand-in':
        params.update(backend='bpu', bpu_path=str(stand_in.bin))
        env = stand_in.env()
    else:
        params['backend'] = 'onnxruntime'
        params.update(extra or {})
    return node_command('edge_classifier.node', params, node_name=name), env


class Listener:
    def __init__(self, node, output, name):
        self.node, self.name = node, name
        self.window = None
        self.latencies, self.frame_ids, self.diag = [], [], {}
        self.subs = [node.create_subscription(Classification, output, self._on_result, 100),
                     node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                              10)]
        self.first = None

    def _on_result(self, msg):
        now = time.time()
        self.first = self.first or now
        if self.window and self.window[0] <= now <= self.window[1]:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            self.latencies.append(now - stamp)
            self.frame_ids.append(msg.header.frame_id)

    def _on_diag(self, msg):
        for status in msg.status:
            if node_of(status.name) == self.name:
                self.diag = {kv.key: kv.value for kv in status.values}

    def spin_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            spin_once(self.node, 0.05)
        return predicate()

    def close(self):
        for sub in self.subs:
            self.node.destroy_subscription(sub)


class WebWatcher:
    """web_view on `output` plus a client reading its MJPEG stream as fast as it comes (a
    browser watching)."""

    def __init__(self, output):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            self.port = s.getsockname()[1]
        self.proc = _spawn(node_command('edge_classifier.web_view', {
            'port': self.port, 'topic': output}))
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=2) as sock:
                    sock.sendall(f'GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{self.port}'
                                 f'\r\n\r\n'.encode())   # a loopback name (the Host check)
                    while not self._stop.is_set():
                        data = sock.recv(1 << 16)
                        if not data:
                            break
                        self.bytes += len(data)
            except OSError:
                time.sleep(0.2)   # not serving yet

    def close(self):
        self._stop.set()
        self._thread.join(5)
        return _stop(self.proc)


def measure(node, case, rate, seconds, stand_in, cameras=1, viewer=None, tag='nb',
            extra=None):
    """One case: its node + `cameras` sample cameras; figures over a `seconds` window.
    viewer: None, 'overlay' (an overlay subscriber) or 'web' (web_view and a stream
    reader)."""
    name = f'{tag}_{case.replace("-", "_")}'
    inputs = [f'/{name}/cam{i}/image' for i in range(cameras)]
    output = f'/{name}/classification'
    listener = Listener(node, output, name)
    overlay_sub = (node.create_subscription(Image, output + '/overlay', lambda m: None, 1)
                   if viewer == 'overlay' else None)
    web = WebWatcher(output) if viewer == 'web' else None
    cmd, env = _node(case, inputs, output, stand_in, name, extra)
    proc, cams = None, []
    try:   # (started inside: Ctrl-C at any moment stops what was started)
        proc = _spawn(cmd, env)
        for i, topic in enumerate(inputs):
            cams.append(_spawn(node_command('edge_classifier.tools.sample_camera', {
                'topic': topic, 'width': 640, 'height': 480, 'rate': float(rate),
                'frame_id': f'cam{i}'})))
        if not listener.spin_until(lambda: listener.first or proc.poll() is not None, 90):
            raise EdgeClassifierError(f'{case}: no result in 90 s')
        if proc.poll() is not None:
            raise EdgeClassifierError(f'{case} exited: {proc.stderr.read()[-1500:]}')
        listener.spin_until(lambda: False, 2.0)  # settle
        cpu0, rss0, t0 = _cpu_s(proc.pid), _rss_mib(proc.pid), time.time()
        web0 = (_cpu_s(web.proc.pid), web.bytes) if web else (0.0, 0)
        listener.window = (t0, t0 + seconds)
        listener.spin_until(lambda: time.time() > t0 + seconds, seconds + 5)
        cpu1, rss1 = _cpu_s(proc.pid), _rss_mib(proc.pid)
        web1 = (_cpu_s(web.proc.pid), web.bytes) if web else (0.0, 0)
        listener.spin_until(lambda: False, 0.3)  # the last diagnostics
    finally:
        codes = [_stop(cam) for cam in cams] + ([_stop(proc)] if proc is not None else [])
        if web is not None:
            codes.append(web.close())
        listener.close()
        if overlay_sub is not None:
            node.destroy_subscription(overlay_sub)
    count = len(listener.latencies)
    lat = np.asarray(listener.latencies or [np.nan]) * 1e3
    return {'fps': count / seconds, 'cpu_ms': (cpu1 - cpu0) * 1e3 / max(count, 1),
            'p50': float(np.percentile(lat, 50)), 'p99': float(np.percentile(lat, 99)),
            'per_camera': [listener.frame_ids.count(f'cam{i}') / seconds
                           for i in range(cameras)],
            'received': [listener.diag.get(f'{t}: {BOOKS_KEY}', '?').split('/')[0]
                         for t in inputs],
            'rss': (rss0, rss1), 'exit': codes,
            'web_cpu_ms': (web1[0] - web0[0]) * 1e3 / max(count, 1),
            'web_kib_s': (web1[1] - web0[1]) / 1024 / seconds}


def _median(rows, key):
    return float(np.median([r[key] for r in rows]))


@cli('node_bench')
def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='window per case')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--rates', default='30,flood', help='camera rates: Hz or flood')
    parser.add_argument('--cases', default=','.join(CASES))
    parser.add_argument('--cameras-seconds', type=float, default=None,
                        help='window of the four-camera runs (default 3 x --seconds; 0: skip '
                             'them)')
    parser.add_argument('--overlay', action='store_true',
                        help='also run classifier_node with an overlay subscriber')
    parser.add_argument('--web', action='store_true',
                        help='also run classifier_node with web_view and a client reading '
                             'its live stream (a browser watching)')
    parser.add_argument('--max-rate', type=float, default=0.0, metavar='HZ',
                        help='also run classifier_node with max_rate:=HZ (the rate budget)')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='KEY:=VALUE',
                        help='a parameter of classifier_node (Lite0), e.g. workers:=1')
    args = parser.parse_args(argv)
    if args.cameras_seconds is None:
        args.cameras_seconds = 3 * args.seconds
    extra = dict(p.split(':=', 1) for p in args.param)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    rates = [FLOOD_HZ if r == 'flood' else float(r) for r in args.rates.split(',') if r]
    cases = [c for c in args.cases.split(',') if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f'unknown case(s) {unknown}; expected {", ".join(CASES)}')
    variants = [(c, None) for c in cases]
    for viewer in ('overlay', 'web', 'max_rate'):
        if getattr(args, viewer) and 'classifier_node' in cases:
            variants.append(('classifier_node', viewer))
    print(f'# node benchmark: 640x480 bgr8 camera, {args.seconds:g} s per case, medians of '
          f'{args.rounds} alternating rounds (this CPU; ONNX Runtime, not BPU figures)\n',
          flush=True)
    stand_in = StandIn()
    init_tool()
    node = rclpy.create_node('node_bench')
    results = {}
    steps = args.rounds * len(rates) * len(variants) + (2 if args.cameras_seconds else 0)
    bar = tqdm(total=steps, desc='node_bench', file=sys.stderr, leave=False, disable=None)
    try:
        for _ in range(args.rounds):
            for rate in rates:
                for case, viewer in variants:
                    bar.set_postfix_str(f'{case}{f" +{viewer}" if viewer else ""} at '
                                        f'{"flood" if rate == FLOOD_HZ else f"{rate:g} Hz"}')
                    budget = {'max_rate': args.max_rate} if viewer == 'max_rate' else {}
                    results.setdefault((rate, case, viewer), []).append(
                        measure(node, case, rate, args.seconds, stand_in, viewer=viewer,
                                extra={**extra, **budget}))
                    bar.update()
        cameras = {}
        if args.cameras_seconds:
            for case in ('stand-in', 'classifier_node'):
                bar.set_postfix_str(f'{case}, 4 cameras x 30 Hz')
                cameras[case] = measure(node, case, 30.0, args.cameras_seconds, stand_in,
                                        cameras=4, tag='nb4', extra=extra)
                bar.update()
    finally:
        bar.close()
        node.destroy_node()
        shutdown_rclpy()
    web = any(viewer == 'web' for _, _, viewer in results)
    print('| camera | case | classified fps | CPU ms / frame | e2e p50 ms | e2e p99 ms |'
          + (' web_view CPU ms / frame |' if web else '') + ' node CPU % of a core |')
    print('|---|---|---|---|---|---|' + ('---|' if web else '') + '---|')
    labels = {None: '', 'overlay': ' + overlay viewer', 'web': ' + web_view, a browser watching',
              'max_rate': f' max_rate:={args.max_rate:g}'}
    for (rate, case, viewer), rows in results.items():
        busy = float(np.median([r['cpu_ms'] * r['fps'] / 10 for r in rows]))
        print(f'| {"flood" if rate == FLOOD_HZ else f"{rate:g} Hz"} | {case}{labels[viewer]} | '
              f'{_median(rows, "fps"):.1f} | {_median(rows, "cpu_ms"):.1f} | '
              f'{_median(rows, "p50"):.1f} | {_median(rows, "p99"):.1f} |' +
              ((f' {_median(rows, "web_cpu_ms"):.1f} |' if viewer == 'web' else ' |')
               if web else '') + f' {busy:.1f} |')
    if cameras:
        print(f'\n# four 30 Hz cameras into one node (2 workers), {args.cameras_seconds:g} s\n')
        print('| case | classified fps per camera | total | received per camera (node) | '
              'RSS start → end MiB | e2e p99 ms |')
        print('|---|---|---|---|---|---|')
        for case, r in cameras.items():
            print(f'| {case} | {" / ".join(f"{f:.1f}" for f in r["per_camera"])} | '
                  f'{sum(r["per_camera"]):.1f} | {" / ".join(r["received"])} | '
                  f'{r["rss"][0]:.0f} → {r["rss"][1]:.0f} | {r["p99"]:.1f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
