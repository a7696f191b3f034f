"""Real rclpy over Fast DDS between processes: a harness for the test process and
helpers to run the package's executables as separate processes."""
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor


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


def wait_for(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


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
