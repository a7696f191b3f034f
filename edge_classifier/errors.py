"""One error family for the whole package, and the way every command line ends on one.

Every error this package raises for a user to read (a bad config, a missing model or
labels file, an unusable frame, a failed export, a bad launch argument) is an
EdgeClassifierError, and every one of its kinds is defined here: its message names the
file, key or argument and the fix, and it travels with its own type (never re-wrapped
into another's message). Commands print that message and exit with code 2, never a
traceback.
"""
import argparse
import contextlib
import difflib
import functools
import signal
import sys
import threading

EXIT_USAGE = 2  # what argparse uses for a bad command line, and what a bad config gets


class EdgeClassifierError(Exception):
    """Base of the package's errors: the message is what the user reads, fix included."""


# ---- the package's errors, by where they arise ----------------------------------------

# config.py
class ConfigError(EdgeClassifierError, ValueError):
    """A model config (file or parameters) is missing, malformed or invalid."""


# frames.py
class FrameError(EdgeClassifierError, ValueError):
    """A frame that cannot be used: unsupported encoding, or fields that disagree."""


# postprocess.py
class LabelsError(EdgeClassifierError, ValueError):
    """The labels file is missing or does not match the model's classes."""


# postprocess.py
class ScoresError(EdgeClassifierError, ValueError):
    """The model's output cannot be turned into results (NaN or infinite scores)."""


# backends/base.py
class BackendError(EdgeClassifierError, RuntimeError):
    """A backend cannot be used: runtime not installed, model file missing or unusable."""


# wiring/parameters.py
class StartupError(EdgeClassifierError):
    """A parameter, config, model or labels file the node cannot start with."""


# launch_args.py
class LaunchArgumentError(EdgeClassifierError):
    """A launch argument with a value the launch file cannot use."""


# launch_args.py
class ClassifierFailed(EdgeClassifierError):
    """The classifier exited with an error. Raised inside the launch, so that `ros2 launch`
    ends with a non-zero exit code (launch returns 1 when an action raises)."""


# web_view.py
class WebViewError(EdgeClassifierError):
    """A parameter or a port the web view cannot start with."""


# tools/sample_camera.py
class CameraError(EdgeClassifierError):
    """A source or parameter the sample camera cannot start with."""


# tools/bag.py
class BagError(EdgeClassifierError):
    """A bag, or a topic in it, that cannot be used: the message names the file and topic."""


# tools/evaluate.py
class DatasetError(EdgeClassifierError, ValueError):
    """An evaluation image set that cannot be used (tools/evaluate)."""


# tools/models.py
class PrepareError(EdgeClassifierError, RuntimeError):
    """A model file could not be prepared (tools/models)."""


# tools/quantize.py
class QuantizeError(EdgeClassifierError, RuntimeError):
    """A model could not be quantized (tools/quantize)."""


# tools/lite0_onnx.py
class ExportError(EdgeClassifierError, RuntimeError):
    """The default model could not be exported (tools/lite0_onnx)."""


EXIT_INTERRUPTED = 130   # the shell's 128 + SIGINT
EXIT_TERMINATED = 143    # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM in a command line tool: unwinds like Ctrl-C (every `finally` and
    `except KeyboardInterrupt` runs: child processes stopped, worker threads joined)."""


class _Held:
    depth = 0        # > 0 inside signals_held() (main thread only)
    pending = None   # the KeyboardInterrupt / Terminated to raise when the hold ends


def _on_stop_signal(signum, frame):
    exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    if _Held.depth:
        _Held.pending = _Held.pending or exc
        return
    _Held.pending = None
    raise exc


def raise_on_stop_signals():
    """SIGINT raises KeyboardInterrupt and SIGTERM Terminated in the main thread, as in
    any Python tool, except inside signals_held(). Returns the handlers replaced (None:
    one not installed from Python)."""
    return {sig: signal.signal(sig, _on_stop_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


@contextlib.contextmanager
def signals_held():
    """Hold Ctrl-C / SIGTERM (raise_on_stop_signals) while rclpy runs: in spin_once the C++
    side calls Python (a message's class builds it), and a KeyboardInterrupt raised there
    comes out of pybind11 as `RuntimeError: Unable to convert call argument '0' to Python
    object`, a traceback instead of a clean stop (seen once in CI, node_bench). The held
    signal is raised when the hold ends."""
    _Held.depth += 1
    try:
        yield
    finally:
        _Held.depth -= 1
        if not _Held.depth and _Held.pending is not None:
            exc, _Held.pending = _Held.pending, None
            raise exc


def cli(label):
    """Decorate a main(argv): an EdgeClassifierError ends it with its message and exit 2;
    Ctrl-C (SIGINT) and SIGTERM end it with one line, `<label>: interrupted`, and exit 130
    or 143, never a traceback (what the tool cleans up runs in its `finally` blocks)."""
    def wrap(main):
        @functools.wraps(main)
        def run(*args, **kwargs):
            previous = {}
            if threading.current_thread() is threading.main_thread():
                previous = raise_on_stop_signals()
            try:
                return main(*args, **kwargs)
            except EdgeClassifierError as exc:
                print(f'{label}: error: {exc}', file=sys.stderr)
                return EXIT_USAGE
            except KeyboardInterrupt as exc:
                print(f'{label}: interrupted', file=sys.stderr)
                return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
            finally:
                for sig, handler in previous.items():
                    if handler is not None:
                        signal.signal(sig, handler)
        return run
    return wrap


class Parser(argparse.ArgumentParser):
    """argparse for every command line of the package: an unknown option is refused
    naming the closest known one (`--topk`: did you mean --top-k?), exit 2."""

    def error(self, message):
        if message.startswith('unrecognized arguments:'):
            known = [o for parser in self._parsers() for action in parser._actions
                     for o in action.option_strings]
            hints = []
            for word in message.split(':', 1)[1].split():
                close = difflib.get_close_matches(word.split('=', 1)[0], known, n=1,
                                                  cutoff=0.6) if word.startswith('-') else []
                if close:
                    hints.append(f'{word}: did you mean {close[0]}?')
            if hints:
                message += ' (' + '; '.join(hints) + ')'
        super().error(message)

    def _parsers(self):
        """This parser and its subcommands' (their options are reported here too)."""
        found = [self]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += list(action.choices.values())
        return found
