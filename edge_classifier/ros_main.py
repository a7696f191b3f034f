"""The main() shared by the package's executables: init, build the node (a startup
error prints its reason and exits 2), spin until SIGINT/SIGTERM, clean up, exit 0."""
import sys

import rclpy

try:
    from rclpy.executors import ExternalShutdownException
except ImportError:  # pragma: no cover - very old rclpy
    ExternalShutdownException = KeyboardInterrupt


def run_node(factory, startup_errors, label, args=None):
    rclpy.init(args=args)
    try:
        node = factory()
    except startup_errors as exc:
        print(f'[{label}] cannot start: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        rclpy.try_shutdown()
        return 0
    except Exception:
        if not rclpy.ok():  # SIGINT/SIGTERM arrived while starting: a normal stop
            return 0
        raise
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        shutdown = getattr(node, 'shutdown', None)
        if shutdown:
            shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
