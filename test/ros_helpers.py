"""Real rclpy over Fast DDS between processes: a harness for the test process and
helpers to run the package's executables as separate processes."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor


class Harness:
    """An rclpy context + node spun in a background thread (the test's own DDS peer)."""

    def __init__(self, name):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
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

    def close(self):
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2)


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
