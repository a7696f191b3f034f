"""Real rclpy over Fast DDS between processes: a harness for the test process, helpers to
run the package's executables as separate processes, and what the DDS tests share (frames
to send, a node on the fake BPU, a managed node, /diagnostics of a node)."""
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from edge_classifier.tools.encode import encode_raw
from edge_classifier.wiring.diagnostics import node_of

from conftest import CAT_CLASSES
from helpers import FAKE_BPU, compiled_model, wait_for  # noqa: F401 (wait_for: shared)


# HTTP to this machine's own servers (web_view, chromedriver), never through a proxy: urllib
# sends even http://127.0.0.1 to $http_proxy unless $no_proxy lists it, and a developer's
# or a robot's environment may set one. LOCAL_HTTP.open(url or Request, timeout=...).
LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Harness:
    """An rclpy context + node spun in a background thread (the test's own DDS peer)."""

    def __init__(self, name):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._clients = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutdown races
                if not self.context.ok():
                    return
                raise

    def collect(self, msg_type, topic, qos=10):
        got = []
        self.node.create_subscription(msg_type, topic, got.append, qos)
        return got

    def call(self, srv_type, service, request, *, repeatable=True, timeout=20.0, attempt=2.0):
        """One service call to another process; its response, or None (repeatable=False only)
        when none came.

        A ROS 2 service over DDS is two topics, and discovery matches their four endpoints
        one by one: the client's request reaches the server before the server's response
        writer has matched the client's response reader, the server waits 100 ms and drops
        the response ("failed to send response (timeout)" on its stderr; ros2/rmw_fastrtps
        issue 842, open). A loaded machine hits it on a fresh process's first call. So one
        client per service is kept, and a repeatable request (get, list, describe, set to the
        same value) is sent again every `attempt` seconds until answered; a request that
        must not run twice (a lifecycle transition) is sent once and the caller checks what
        happened (change_state asks get_state).
        """
        key = (srv_type, service)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, service)
        client = self._clients[key]
        assert client.wait_for_service(timeout_sec=timeout), f'{service} not available'
        deadline = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            left = deadline - time.monotonic()
            if wait_for(future.done, timeout=min(attempt, left) if repeatable else left,
                        interval=0.005):
                return future.result()
            client.remove_pending_request(future)
            if not repeatable:
                return None
            assert time.monotonic() < deadline, f'{service}: no response in {timeout} s'

    def close(self):
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2)


# The state each transition of a managed node leads to when it succeeds.
GOAL = {Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
        Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
        Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE,
        Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED}


def get_state(ros, node):
    """The current state id of the managed node `node` (its name from the root)."""
    return ros.call(GetState, f'{node}/get_state', GetState.Request()).current_state.id


def change_state(ros, node, transition_id, timeout=20.0):
    """A transition of the managed node `node`: its success. Its response can be lost in
    discovery (Harness.call): a transition is not sent twice, the state it left tells."""
    request = ChangeState.Request()
    request.transition.id = transition_id
    response = ros.call(ChangeState, f'{node}/change_state', request, repeatable=False,
                        timeout=timeout)
    if response is None:
        return get_state(ros, node) == GOAL[transition_id]
    return response.success


def ros_process(module, params=None, args=(), env=None, ros_args=(), process_group=None):
    """python -m module --ros-args -p k:=v ... as a separate process (own DDS participant).

    process_group: 0 starts a new process group (as `ros2 launch` or a terminal does), a
    pid puts the process in that group; None keeps the test's group.
    """
    cmd = [sys.executable, '-m', module, *args, '--ros-args', *ros_args]
    for key, value in (params or {}).items():
        if isinstance(value, (list, tuple)):
            value = '[' + ','.join(f"'{v}'" if isinstance(v, str) else str(v)
                                   for v in value) + ']'
        elif isinstance(value, bool):
            value = str(value).lower()
        cmd += ['-p', f'{key}:={value}']
    setpgid = None if process_group is None else (lambda: os.setpgid(0, process_group))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})), preexec_fn=setpgid)


def stop(proc, sig=signal.SIGINT, timeout=10):
    """Signal a process (sig None: only wait), wait; returns (exit code, stdout, stderr,
    seconds to exit)."""
    t0 = time.monotonic()
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return 'killed', out, err, time.monotonic() - t0
    return proc.returncode, out, err, time.monotonic() - t0


def proc_status_kib(pid, field):
    """A kB field of /proc/<pid>/status: VmRSS (resident now), VmHWM (its peak)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise AssertionError(f'no {field} in /proc/{pid}/status')


# ---- shared by the DDS tests -----------------------------------------------------------
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


EXPECTED = {'chelsea': CAT_CLASSES, 'coffee': {'967'}}


def small(bgr):
    h, w = bgr.shape[:2]
    s = 240 / min(h, w)
    return cv2.resize(bgr, (round(w * s) // 2 * 2, 240), interpolation=cv2.INTER_AREA)


def good_image(sample_bgr, frame_id):
    raw = encode_raw(small(sample_bgr['coffee']), 'bgr8')
    msg = Image(height=raw.height, width=raw.width, encoding='bgr8', step=raw.step)
    msg.data = raw.data
    msg.header.frame_id = frame_id
    return msg


def send_and_wait(ros, results, pub, msg, frame_id, stamp, timeout=20):
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp, 123456789
    assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=timeout), \
        f'node never subscribed to {pub.topic_name}'
    match = []

    def arrived():
        match[:] = [m for m in results if m.header.frame_id == frame_id]
        return bool(match)

    for _ in range(3):  # a best-effort subscriber may miss one publication at startup
        pub.publish(msg)
        if wait_for(arrived, timeout=timeout / 3):
            return match[0]
    raise AssertionError(f'no Classification for {frame_id}')


def check(result, photo, stamp):
    assert result.header.stamp.sec == stamp and result.header.stamp.nanosec == 123456789
    assert len(result.results) == 5
    scores = [h.score for h in result.results]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert result.results[0].class_id in EXPECTED[photo], (photo, result.results[0])


def set_param(ros, name, value, node='/edge_classifier'):
    msg = ParameterMsg(name=name)
    if isinstance(value, float):
        msg.value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    elif isinstance(value, int):
        msg.value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    elif isinstance(value, (list, tuple)):
        msg.value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY,
                                   string_array_value=list(value))
    else:
        msg.value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return ros.call(SetParameters, f'{node}/set_parameters',
                    SetParameters.Request(parameters=[msg])).results[0]


class Diagnostics:
    """The newest /diagnostics status of a node: its values and level."""

    def __init__(self, ros, name):
        self.latest, self.level = {}, None
        self.name = name
        ros.node.create_subscription(DiagnosticArray, '/diagnostics', self._on, 10)

    def _on(self, msg):
        for status in msg.status:
            if node_of(status.name) == self.name:
                self.latest = {kv.key: kv.value for kv in status.values}
                self.level = status.level

    def value(self, key, default=0):
        return type(default)(self.latest.get(key, default))


def node_on_fake_bpu(cfg, tmp_path, prefix, module='edge_classifier.node', params=None,
                     ros_args=(), **faults):
    """classifier_node (1 worker) on the BPU backend, the fake hobot_dnn with faults
    (fail_first, delay_ms, bad_outputs), reading <prefix>/image, publishing
    <prefix>/classification; `params` add to or replace the node's parameters."""
    bin_path = compiled_model(tmp_path / 'model.bin', cfg.resolve(cfg.onnx_path), cfg, **faults)
    env = {'PYTHONPATH': os.pathsep.join(filter(None, [FAKE_BPU,
                                                       os.environ.get('PYTHONPATH')]))}
    return ros_process(module, {
        'image_topics': [prefix + '/image'], 'output_topic': prefix + '/classification',
        'backend': 'bpu', 'bpu_path': str(bin_path), 'workers': 1,
        'diagnostics_period': 0.2, **(params or {})}, env=env, ros_args=ros_args)


# ---- managed node ----------------------------------------------------------------------
class Managed:
    def __init__(self, ros, params, name):
        self.ros, self.name = ros, name
        self.proc = ros_process('edge_classifier.lifecycle_node', params,
                                ros_args=('-r', f'__node:={name}'))

    def state(self):
        return get_state(self.ros, f'/{self.name}')

    def change(self, transition_id):
        return change_state(self.ros, f'/{self.name}', transition_id, timeout=10)
