"""The main() shared by the package's executables: init, build the node (a startup
error prints its reason and exits 2), spin until SIGINT/SIGTERM, clean up, exit 0."""
import sys

import rclpy

try:
    from rclpy.executors import ExternalShutdownException
except ImportError:  # pragma: no cover - very old rclpy
    ExternalShutdownException = KeyboardInterrupt


def _stopping():
    """True once SIGINT/SIGTERM has shut the context down."""
    return not rclpy.ok()


def _finish():
    rclpy.try_shutdown()
    # Join rclpy's signal-handling thread before interpreter teardown: leaving it to the
    # C++ static destructors can abort the process ("terminate called without an active
    # exception") when SIGTERM arrives under load.
    uninstall = getattr(getattr(rclpy, 'signals', None), 'uninstall_signal_handlers', None)
    if uninstall is not None:
        try:
            uninstall()
        except Exception:  # not installed, or already gone
            pass


def node_command(module, params, node_name=None, log_level='warn'):
    """argv to run `python -m module` as a separate ROS process with -p key:=value."""
    cmd = [sys.executable, '-m', module, '--ros-args', '--log-level', log_level]
    if node_name:
        cmd += ['-r', f'__node:={node_name}']
    for key, value in params.items():
        cmd += ['-p', f'{key}:={value}']
    return cmd


def run_node(factory, startup_errors, label, args=None):
    rclpy.init(args=args)
    try:
        node = factory()
    except startup_errors as exc:
        print(f'[{label}] cannot start: {exc}', file=sys.stderr)
        _finish()
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        _finish()
        return 0
    except Exception:
        if _stopping():  # the signal arrived while starting: a normal stop
            _finish()
            return 0
        raise
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal can shut the context down between the executor's checks, which then
        # surfaces as an RCLError ("context is not valid") instead of a clean exit.
        if not _stopping():
            raise
    finally:
        shutdown = getattr(node, 'shutdown', None)
        if shutdown:
            shutdown()
        node.destroy_node()
        _finish()
    return 0
