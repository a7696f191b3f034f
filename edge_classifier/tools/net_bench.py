"""Across computers: camera on one test host, classifier and a listener on the other.

    sudo python -m edge_classifier.tools.net_bench [--seconds 12] [--cases ...]
    python -m edge_classifier.tools.net_bench listen --topic /x/classification  # (internal)

Two network namespaces joined by a veth pair stand for two computers (tools/testhosts.py;
root): Fast DDS on UDPv4 only between them, as between two machines. Host A runs the
sample camera (the bundled photos at 30 Hz, bgr8 or JPEG) and a plain rclpy listener of the
results; host B runs classifier_node (EfficientNet-Lite0, 2 workers, ONNX Runtime). The
same-host row runs all three on this machine's loopback (shared memory). Columns:
classified fps at A (results the listener got in the window), node input fps (frames the
node received, from its diagnostics), e2e p50/p99 (the listener's receive time - the
camera's stamp: camera -> link -> node -> link -> listener). Cases run once each, in order,
`--seconds` windows; the link's settings (tc tbf, nftables loss) are made before a case.

`listen` (used by this tool and the tests): subscribes to TOPIC (Classification), TOPIC/
label_info and /diagnostics, prints one JSON line per message: {"r": [recv_time, stamp,
frame_id]}, {"label_info": n}, {"books": {source: [received, classified, ...]}}.
"""
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .. import fastdds, resources
from ..errors import EdgeClassifierError, Parser, cli
from . import node_command, spawn

VGA, HD = (640, 480), (1920, 1080)
CASES = {  # name: label, settings (two hosts, the shipped profile, 640x480 bgr8 unless said)
    'same': ('same host, shared memory, 640x480 bgr8', dict(two=False)),
    'default': ('two hosts, Fast DDS defaults, 640x480 bgr8', dict(shipped=False)),
    'vga': ('two hosts, 640x480 bgr8', {}),
    'vga100': ('two hosts, 100 Mbit/s (tc tbf), 640x480 bgr8', dict(rate='100mbit')),
    'vga100_default': ('two hosts, 100 Mbit/s, Fast DDS defaults, 640x480 bgr8',
                       dict(rate='100mbit', shipped=False)),
    'jpeg100': ('two hosts, 100 Mbit/s, jpeg', dict(rate='100mbit', encoding='jpeg')),
    'hd_default': ('two hosts, Fast DDS defaults, 1920x1080 bgr8',
                   dict(shipped=False, size=HD)),
    'hd': ('two hosts, 1920x1080 bgr8', dict(size=HD)),
    'loss': ('two hosts, 1 % of datagrams lost, 640x480 bgr8, reliable', dict(loss=1)),
    'loss_be': ('two hosts, 1 % lost, 640x480 bgr8, best effort camera', dict(
        loss=1, reliability='best_effort')),
    'jpeg_loss': ('two hosts, 1 % lost, jpeg, reliable', dict(loss=1, encoding='jpeg')),
    'jpeg_loss_frames': ('two hosts, 1 % lost on the frames\' way only, jpeg, reliable', dict(
        loss=1, encoding='jpeg', loss_at='b')),
    'jpeg_loss_results': ('two hosts, 1 % lost on the results\' way only, jpeg, reliable',
                          dict(loss=1, encoding='jpeg', loss_at='a')),
    'jpeg_loss_be': ('two hosts, 1 % lost, jpeg, best effort camera', dict(
        loss=1, encoding='jpeg', reliability='best_effort')),
    'cut': ('two hosts, 640x480 bgr8, the first 10 s after a 5 s link cut', dict(cut=5.0)),
}
DEFAULTS = dict(two=True, shipped=True, encoding='bgr8', size=VGA, rate=None, loss=0,
                loss_at='ab', reliability='reliable', cut=0.0)


def network_profile():
    """The shipped network profile for the Fast DDS this process runs on."""
    return fastdds.network_profile(resources.config_dir(), fastdds.major_version())


# ---- the listener (a process on host A) ---------------------------------------------------
def listen(topic):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Classification, LabelInfo

    from ..ros_main import init_tool, shutdown_rclpy, spin_until_stopped
    from ..wiring.diagnostics import BOOKS_KEY

    lock = threading.Lock()

    def say(obj):
        with lock:
            sys.stdout.write(json.dumps(obj) + '\n')
            sys.stdout.flush()

    def on_result(msg):
        say({'r': [time.time(), msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
                   msg.header.frame_id]})

    def on_diag(msg):
        for status in msg.status:
            got = {kv.key[:-len(BOOKS_KEY) - 2]: [int(x) for x in kv.value.split('/')]
                   for kv in status.values if kv.key.endswith(': ' + BOOKS_KEY)}
            if got:
                say({'books': got, 'node': status.name})

    init_tool()   # SIGINT / SIGTERM: KeyboardInterrupt / Terminated, between spins
    node = rclpy.create_node('net_listener')
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(Classification, topic, on_result, 100)
    node.create_subscription(LabelInfo, topic + '/label_info',
                             lambda m: say({'label_info': len(m.class_map)}), latched)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    say({'ready': True})
    try:
        spin_until_stopped(node)
    finally:
        node.destroy_node()
        shutdown_rclpy()


class Lines:
    """A listener process's JSON lines, read in a thread: results, LabelInfo, books."""

    def __init__(self, proc):
        self.proc = proc
        self.results, self.label_infos, self.books = [], [], {}
        self.received = {}   # source -> [(time, frames received so far)], per diagnostics
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if 'r' in obj:
                self.results.append(tuple(obj['r']))
            elif 'label_info' in obj:
                self.label_infos.append((time.time(), obj['label_info']))
            elif 'books' in obj:
                self.books.update(obj['books'])
                for source, books in obj['books'].items():
                    self.received.setdefault(source, []).append((time.time(), books[0]))

    def input_fps(self, source, t0, t1):
        """Frames the node received per second between t0 and t1 (its diagnostics, 1 Hz)."""
        inside = [s for s in self.received.get(source, []) if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return float('nan')
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def since(self, t0, t1=float('inf')):
        return [r for r in self.results if t0 <= r[0] <= t1]


def wait_for(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except Exception:
        proc.kill()
        proc.wait()
        return 'killed'
    return proc.returncode


class Rig:
    """Camera + listener on host A, classifier_node on host B (or all on this machine:
    hosts=None). Processes are started by `start_*`, stopped by close()."""

    def __init__(self, hosts, prefix, encoding='bgr8', size=(640, 480), rate=30.0,
                 node_params=None, reliability='reliable'):
        self.hosts, self.prefix = hosts, prefix
        self.image = f'{prefix}/image' + ('/compressed' if encoding == 'jpeg' else '')
        self.output = f'{prefix}/classification'
        self.encoding, self.size, self.rate = encoding, size, rate
        self.reliability = reliability
        self.node_params = node_params or {}
        self.camera = self.node = self.listener = None
        self.lines = None

    def _popen(self, host, argv, stdout=None):
        import subprocess
        stdout = stdout or subprocess.DEVNULL
        if self.hosts is None:
            return spawn(argv, stdout=stdout, stderr=subprocess.PIPE, text=True)
        return self.hosts.popen(host, argv, stdout=stdout)

    def start_listener(self):
        import subprocess
        self.listener = self._popen('a', [sys.executable, '-m', 'edge_classifier.tools.net_bench',
                                          'listen', '--topic', self.output],
                                    stdout=subprocess.PIPE)
        self.lines = Lines(self.listener)
        return self

    def start_camera(self):
        params = {'topic': self.image.rsplit('/compressed', 1)[0], 'width': self.size[0],
                  'height': self.size[1], 'rate': float(self.rate), 'frame_id': 'cam'}
        params.update(encoding=self.encoding, reliability=self.reliability)
        self.camera = self._popen('a', node_command('edge_classifier.tools.sample_camera',
                                                    params))
        return self

    def start_node(self):
        key = 'compressed_topics' if self.encoding == 'jpeg' else 'image_topics'
        params = {'workers': 2, 'backend': 'onnxruntime', 'output_topic': self.output,
                  'image_topics': '[]', key: json.dumps([self.image]), **self.node_params}
        self.node = self._popen('b', node_command('edge_classifier.node', params,
                                                  node_name='net_node'))
        return self

    def close(self):
        codes = {}
        for name in ('camera', 'node', 'listener'):
            proc = getattr(self, name)
            if proc is not None:
                codes[name] = stop(proc)
        return codes


def figures(lines, source, t0, seconds):
    """Results at A, the node's input rate and e2e latency over [t0, t0 + seconds]."""
    got = lines.since(t0, t0 + seconds)
    lat = np.asarray([r[0] - r[1] for r in got] or [np.nan]) * 1e3
    return {'fps': len(got) / seconds, 'input_fps': lines.input_fps(source, t0, t0 + seconds),
            'p50': float(np.percentile(lat, 50)), 'p99': float(np.percentile(lat, 99))}


def measure(case, seconds, tag):
    """One case, from its hosts' making to their removal: its figures (with `cut`, those of
    the first `seconds` after the link came back, and how it came back)."""
    from .testhosts import TestHosts
    s = dict(DEFAULTS, **CASES[case][1])
    hosts = (TestHosts(profile=network_profile() if s['shipped'] else None).open()
             if s['two'] else None)
    rig = Rig(hosts, f'/{tag}_{case}', s['encoding'], s['size'], reliability=s['reliability'])
    try:
        if s['rate']:
            hosts.limit(s['rate'])
        for host in (s['loss_at'] if s['loss'] else ''):
            hosts.lose(s['loss'], host)   # into B: the frames; into A: the results
        rig.start_listener().start_node().start_camera()
        if not wait_for(lambda: rig.lines.results, 120):
            raise EdgeClassifierError(f'{case}: no result in 120 s ({rig.close()})')
        time.sleep(3.0)   # settle
        extra = {}
        if s['cut']:
            hosts.cut()
            cut = time.time()
            time.sleep(s['cut'])
            hosts.restore()
            back = time.time()
            wait_for(lambda: rig.lines.since(back), 60)
            first = rig.lines.since(back)
            extra['resumed_s'] = first[0][0] - back if first else float('nan')
            extra['stale'] = sum(r[1] < cut for r in first)
        t0 = time.time()
        time.sleep(seconds + 1.5)   # the window, then the last results and diagnostics
        if s['cut']:
            after = first[0][0] + 1.0 if first else t0
            late = [r[0] - r[1] for r in rig.lines.since(after, t0 + seconds)]
            extra['p99_after_1s'] = float(np.percentile(late, 99)) * 1e3 if late else np.nan
            t0 = back
        return dict(figures(rig.lines, rig.image, t0, seconds), **extra)
    finally:
        rig.close()
        if hosts is not None:
            hosts.close()


@cli('net_bench')
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['listen']:
        parser = Parser(prog='net_bench listen')
        parser.add_argument('--topic', required=True)
        listen(parser.parse_args(argv[1:]).topic)
        return 0
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=12.0, help='window per case')
    parser.add_argument('--cases', default=','.join(CASES))
    args = parser.parse_args(argv)
    from .testhosts import unavailable
    why = unavailable()
    if why:
        raise EdgeClassifierError(why)
    cases = [c for c in args.cases.split(',') if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise EdgeClassifierError(f'unknown case(s) {unknown}: choose from {list(CASES)}')
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    print(f'# {args.seconds:g} s windows; camera at 30 Hz on host A, EfficientNet-Lite0 '
          f'(2 workers, ONNX Runtime) on host B; {Path(network_profile()).name} unless '
          f'"defaults"', flush=True)
    print('| case | classified fps at A | node input fps | e2e p50 / p99 ms |')
    print('|---|---|---|---|', flush=True)
    notes = []
    for case in cases:
        f = measure(case, args.seconds, f'nb{os.getpid() % 1000}')
        print(f'| {CASES[case][0]} | {f["fps"]:.1f} | {f["input_fps"]:.1f} | '
              f'{f["p50"]:.1f} / {f["p99"]:.1f} |', flush=True)
        if 'resumed_s' in f:
            notes.append(f'link cut: the first result {f["resumed_s"]:.2f} s after the link '
                         f'came back; {f["stale"]} of the results were frames from before the '
                         f'cut; e2e p99 from 1 s after the first: {f["p99_after_1s"]:.1f} ms')
    for note in notes:
        print(note)
    return 0


if __name__ == '__main__':
    sys.exit(main())
