"""`make demo`: the classifier node with the default model, fed by the sample camera
playing the bundled photos; prints the top-5 received on /classification per photo.

Three processes talk over real DDS: sample_camera -> classifier_node -> this printer.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException

from .. import resources
from ..ros_main import node_command
from .echo import Echo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='efficientnet_lite0')
    parser.add_argument('--encoding', default='bgr8')
    parser.add_argument('--rate', type=float, default=2.0)
    parser.add_argument('--timeout', type=float, default=60.0)
    args = parser.parse_args(argv)

    # DDS stays on this machine unless the caller chose otherwise (the children inherit it).
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    photos = [p.stem for p in resources.sample_images()]
    if not photos:
        print(f'no sample photos in {resources.samples_dir()}: run make setup', file=sys.stderr)
        return 2
    print(f'edge_classifier demo (ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}): '
          f'sample_camera ({len(photos)} photos, {args.encoding}, {args.rate:g} Hz) -> '
          f'classifier_node (model {args.model}) -> /classification', flush=True)
    node = subprocess.Popen(node_command('edge_classifier.node', {'model': args.model}))
    camera = subprocess.Popen(node_command('edge_classifier.tools.sample_camera', {
        'encoding': args.encoding, 'rate': args.rate, 'frame_id_from_file': 'true'}))

    seen = {}

    def show(msg, names):
        name = msg.header.frame_id
        if name in seen:
            return
        seen[name] = msg
        top = ' | '.join(f'{names.get(int(h.class_id), h.class_id)} {h.score:.3f}'
                         for h in msg.results)
        print(f'{name:<12} top-5: {top}', flush=True)

    rclpy.init()
    listener = rclpy.create_node('edge_classifier_demo')
    echo = Echo(listener, '/classification', on_message=show)
    deadline = time.monotonic() + args.timeout
    status = 0
    try:
        while len(seen) < len(photos):
            if time.monotonic() > deadline:
                print(f'timed out after {args.timeout:g} s: got {len(seen)}/{len(photos)} '
                      f'photos', file=sys.stderr)
                status = 1
                break
            for proc, name in ((node, 'classifier_node'), (camera, 'sample_camera')):
                if proc.poll() is not None:
                    print(f'{name} exited with {proc.returncode}', file=sys.stderr)
                    status = 1
            if status:
                break
            rclpy.spin_once(listener, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C (distro-dependent)
        status = 130
    finally:
        codes = []
        for proc in (camera, node):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (camera, node):
            try:
                codes.append(proc.wait(timeout=10))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append('killed')
        listener.destroy_node()
        rclpy.try_shutdown()
    print(f'received {len(echo.received)} Classification messages covering {len(seen)}/'
          f'{len(photos)} photos; camera exit {codes[0]}, node exit {codes[1]}', flush=True)
    return status


if __name__ == '__main__':
    sys.exit(main())
