"""The main() shared by the package's executables: init, build the node (a startup
error prints its reason and exits 2), spin until SIGINT/SIGTERM, clean up, exit 0.

Ctrl-C on `ros2 launch` reaches a node twice: the terminal sends SIGINT to the whole
process group and launch forwards its own SIGINT moments later (and SIGTERM after a
timeout). The first signal stops the node; later ones must not interrupt the clean-up.
So Python's handlers for SIGINT/SIGTERM only record the signal (no KeyboardInterrupt), and
rclpy's own handlers are left out (rclpy.init(signal_handler_options=NO)): they shut the
context down from a thread of their own in the middle of whatever the node is doing, and
their chaining and unregistering (rclpy signal_handler.cpp) set SIGINT back to its default
action for an instant when a signal is still being handled on another thread, so that a
second Ctrl-C landing then killed the process (exit -2). The executor is woken instead by
the signal's wake-up byte (signal.set_wakeup_fd), relayed to a guard condition; the main
thread then stops the node, and shuts rclpy down, one step after the other.
"""
import difflib
import faulthandler
import os
import signal
import sys
import textwrap
import threading

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterException, ParameterUninitializedException)
from rclpy.parameter import Parameter
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions, uninstall_signal_handlers

from . import fastdds, resources
from .errors import (EXIT_USAGE, EdgeClassifierError, StartupError, raise_on_stop_signals,
                     signals_held)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# s the clean-up after a stop signal may take before every thread's stack is printed and
# the process exits 1 (ros2 launch escalates to SIGKILL 10 s after its SIGINT)
CLEANUP_LIMIT = 8.0
# what rclpy declares on every node (Humble: use_sim_time; Jazzy on: the type descriptions)
RCLPY_PARAMETERS = ('use_sim_time', 'start_type_description_service')


class StopSignals:
    """Records SIGINT/SIGTERM instead of raising: the spin loop polls `received`. Each
    signal also writes a byte to a pipe (signal.set_wakeup_fd) that a thread relays to a
    guard condition of the node (wake), so that the executor wakes at once. close() before
    the node is destroyed."""

    def __init__(self):
        self.received = []
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._closing = False
        self._relay = None
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def _on_signal(self, signum, frame):
        self.received.append(signum)

    def wake(self, node):
        """From now on a stop signal triggers a guard condition of `node`: the executor
        spinning it returns and the spin loop sees `received`."""
        guard = node.create_guard_condition(lambda: None)

        def relay():
            while True:
                try:
                    os.read(self._read, 64)
                except InterruptedError:
                    continue
                if self._closing:
                    return
                guard.trigger()

        self._relay = threading.Thread(target=relay, name='edge_classifier-signals',
                                       daemon=True)
        self._relay.start()

    def close(self):
        """Stop relaying (the thread joined), give the wake-up fd back, close the pipe.
        The recording handlers stay (a late signal must not interrupt the clean-up)."""
        signal.set_wakeup_fd(self._previous_fd)
        self._closing = True
        if self._relay is not None:
            os.write(self._write, b'\0')
            self._relay.join()
            self._relay = None
        for fd in (self._read, self._write):
            os.close(fd)


def _init_rclpy(args):
    """rclpy.init without rclpy's signal handlers (module docstring). rclpy starts its
    signal-handling thread even so: it is joined here, at once. Left to the C++ static
    destructors at exit, it can abort the process ("terminate called without an active
    exception"); joined at shutdown instead, uninstall_signal_handlers would first restore
    the handler it saved, which with none installed is SIG_DFL (signal_handler.cpp), for an
    instant, just when launch's second Ctrl-C may land (exit -2). Here that instant falls
    in the start-up, as a Ctrl-C during the imports would."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    uninstall_signal_handlers()


def init_tool(args=None):
    """rclpy.init for a command line tool that spins rclpy itself (echo, demo, benchmarks):
    no rclpy signal handlers either (_init_rclpy); Ctrl-C raises KeyboardInterrupt and
    SIGTERM errors.Terminated, held while rclpy runs (spin_once below)."""
    _init_rclpy(args)
    raise_on_stop_signals()


def shutdown_rclpy():
    """The context shut down, rclpy's signal handling left alone: rclpy.try_shutdown
    (Kilted) would uninstall the handlers again, which sets SIGINT to SIG_DFL for an
    instant (_init_rclpy)."""
    rclpy.get_default_context().try_shutdown()


def spin_once(node_or_executor, timeout_sec):
    """One spin of a tool's node (or executor), Ctrl-C held until it returns: raised inside,
    rclpy's C++ would turn the KeyboardInterrupt into a RuntimeError (errors.signals_held).
    Without rclpy's handlers a signal does not wake the wait: it is seen within timeout_sec."""
    with signals_held():
        if isinstance(node_or_executor, Executor):
            node_or_executor.spin_once(timeout_sec=timeout_sec)
        else:
            rclpy.spin_once(node_or_executor, timeout_sec=timeout_sec)


def spin_until_stopped(node, step_sec=0.1):
    """A tool's rclpy.spin(node) that Ctrl-C or SIGTERM (init_tool) ends cleanly: spins of
    step_sec (the stop's latency at most) until the signal's exception, which ends it."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while True:
            spin_once(executor, step_sec)
    except KeyboardInterrupt:   # Terminated (SIGTERM) is one too
        pass


def use_large_frame_profile():
    """Load the package's Fast DDS profile for camera-sized images, config/
    fastdds_network.xml (fastdds_network_humble_jazzy.xml on Fast DDS 2: fastdds.py): a
    64 MiB shared-memory segment (the default one is too small for a 640x480 bgr8 frame,
    which then goes over fragmented UDP, slowly and at the expense of the process's other
    topics), a 32 MiB UDP receive buffer (frames from a camera on another computer) and a
    20 ms heartbeat (lost datagrams repaired quickly). Unless the user chose a profile
    (FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE). Before rclpy.init."""
    if fastdds.user_chose_profile(os.environ):
        return
    major = fastdds.major_version()
    if major is None:   # not on Fast DDS
        return
    try:
        path = fastdds.network_profile(resources.config_dir(), major)
    except FileNotFoundError:
        return
    if path.is_file():
        os.environ[fastdds.profile_var(major)] = str(path)


def wants_help(args=None):
    """-h or --help among the program's own arguments (those before --ros-args)."""
    argv = list(sys.argv if args is None else args)[1:]   # rclpy's args: a whole argv
    own = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    return '-h' in own or '--help' in own


def usage(label, description, params):
    """A node executable's --help: how to set parameters, what it does, then each
    (name, default as shown, text) row."""
    lines = [f'usage: {label} [--ros-args [-p NAME:=VALUE ...] [--params-file FILE] '
             f'[-r FROM:=TO ...]]', '']
    for paragraph in description.strip().split('\n\n'):
        rows = paragraph.splitlines()
        if any(row[:1].isspace() for row in rows):   # a layout of its own: as written
            lines += rows + ['']
        else:
            lines += textwrap.wrap(' '.join(paragraph.split()), 88) + ['']
    lines.append('parameters (ros2 param describe <node> NAME):')
    for name, default, text in params:
        lines.append(f'  {name} (default {default})')
        lines.extend(f'      {line}' for line in textwrap.wrap(text, 80))
    return '\n'.join(lines)


def descriptor_of(param, read_only=True, restart_text=None, high=None):
    """The ROS descriptor of a parameter row (params.Param): its description (what it does,
    unit, range), its range for tools such as rqt (high: an upper bound that depends on
    another key), dynamic typing (rate:=30 is as good as rate:=30.0; the row checks)."""
    ranges = {}
    high = param.high if high is None else high
    if param.kind in ('int', 'float') and param.low is not None and high is not None:
        if param.kind == 'int':
            ranges['integer_range'] = [IntegerRange(from_value=int(param.low),
                                                    to_value=int(high), step=1)]
        else:
            ranges['floating_point_range'] = [FloatingPointRange(
                from_value=float(param.low), to_value=float(high), step=0.0)]
    if param.choices:
        ranges['additional_constraints'] = 'one of ' + ', '.join(param.choices)
    return ParameterDescriptor(description=param.describe(restart_text), read_only=read_only,
                               dynamic_typing=param.default != [], **ranges)


def declare_rows(node, rows, error):
    """Declare the rows (params.Param) on `node`, read-only, and return their values
    checked by the rows ({name: value}); a bad value raises `error` naming the parameter
    and what it accepts. Then a typo among -p / --params-file keys is refused. (The tools'
    nodes: sample_camera, web_view; the classifier's own parameters: wiring/parameters.)"""
    values = {}
    for param in rows:
        empty_list = param.default == []   # rcl cannot type `[]`: a string array, unset
        try:
            node.declare_parameter(param.name, Parameter.Type.STRING_ARRAY if empty_list
                                   else param.default, descriptor_of(param))
            raw = node.get_parameter(param.name).value
        except ParameterUninitializedException:
            raw = None
        except (InvalidParameterTypeException, InvalidParameterValueException):
            given = getattr(node, '_parameter_overrides', {}).get(param.name)
            raise error(f'parameter {param.name}: expected {param.expected()}, got '
                        f'{getattr(given, "value", None)!r}') from None
        try:
            values[param.name] = param.check(raw)
        except ValueError as exc:
            raise error(f'parameter {param.name}: {exc}') from None
    refuse_unknown_parameters(node)
    return values


def row_help(rows):
    """The parameter rows of a node's --help: name, default, description."""
    return [(p.name, repr(p.default), p.describe()) for p in rows]


def refuse_unknown_parameters(node, ignore=()):
    """A `-p` or params-file key the node did not declare is a typo: fail at startup
    naming it and the closest declared name (rclpy would ignore it silently)."""
    overrides = getattr(node, '_parameter_overrides', {})
    unknown = sorted(name for name in overrides if not node.has_parameter(name)
                     and not name.startswith('qos_overrides.') and name not in ignore)
    if not unknown:
        return
    known = [name for name in sorted(getattr(node, '_parameters', {}))
             if name not in RCLPY_PARAMETERS]
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hints.append(name + (f' (did you mean {close[0]}?)' if close else ''))
    raise StartupError(f'unknown parameter(s) {", ".join(hints)}; this node takes: '
                       f'{", ".join(known)}')


def run_node(factory, label, args=None, large_frames=False, help_text=None):
    """Run one node until a stop signal; returns the process exit code.

    An EdgeClassifierError or a ParameterException (a parameter of the wrong type) while
    the node is built prints `[label] cannot start: <reason>` and returns 2. large_frames:
    the node publishes or receives camera-sized images (use_large_frame_profile). -h/--help prints
    `help_text` and returns 0 without starting anything.
    """
    if help_text is not None and wants_help(args):
        print(help_text)
        return 0
    if large_frames:
        use_large_frame_profile()
    signals = StopSignals()
    _init_rclpy(args)
    node = None
    try:
        try:
            # A signal while the node is built is only recorded: the node is built, then
            # the loop below does not start.
            executor = SingleThreadedExecutor()
            node = factory()
            executor.add_node(node)
            signals.wake(node)
        except (EdgeClassifierError, ParameterException) as exc:
            print(f'[{label}] cannot start: {exc}', file=sys.stderr, flush=True)
            return EXIT_USAGE
        try:
            while rclpy.ok() and not signals.received:
                executor.spin_once(timeout_sec=0.5)  # a timeout: a missed wake-up costs 0.5 s
        except ExternalShutdownException:   # someone else shut the context down
            pass
        return 0
    finally:
        # A clean-up stuck (in the middleware, say) must not hang the process until a
        # SIGKILL with no word of where: past CLEANUP_LIMIT, the stacks and exit 1.
        faulthandler.dump_traceback_later(CLEANUP_LIMIT, exit=True)
        try:
            signals.close()
            if node is not None:
                node.destroy_node()  # the node stops its own threads
            shutdown_rclpy()
        finally:
            faulthandler.cancel_dump_traceback_later()
        # Interpreter shutdown resets Python-handled signals to their default action, so a
        # late SIGINT would kill the process (exit -2); ignored signals stay ignored.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
