"""The output gate: once close() has returned, nothing passes until open() (ROS-free).

Every output of the node (classification, per-source, overlay, label/vision info,
diagnostics) is published through one gate, from whichever thread. A publish that is
already under way when close() is called finishes first: close() waits for it, so after
close() returns, no publish is running and none will start. This is the lifecycle rule
"nothing is published after on_deactivate returns", kept with one lock instead of a flag
read without one (rclpy's LifecyclePublisher checks an unsynchronised flag too, and logs a
warning for every message it refuses).
"""
import threading


class OutputGate:

    def __init__(self, is_open=False):
        self._cond = threading.Condition()
        self._open = is_open
        self._busy = 0

    @property
    def is_open(self):
        return self._open

    def open(self):
        with self._cond:
            self._open = True

    def close(self, timeout=5.0):
        """Refuse new publishes and wait for those under way; False if one is still running
        after `timeout` seconds (a stuck middleware call)."""
        with self._cond:
            self._open = False
            return self._cond.wait_for(lambda: self._busy == 0, timeout)

    def run(self, publish, *args):
        """publish(*args) if the gate is open: its return value; False if the gate is
        closed."""
        with self._cond:
            if not self._open:
                return False
            self._busy += 1
        try:
            return publish(*args)
        finally:
            with self._cond:
                self._busy -= 1
                if not self._busy:
                    self._cond.notify_all()
