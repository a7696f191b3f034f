"""`make demo`: the classifier node with the default model, fed by the sample camera
playing the bundled photos; prints the top-5 received on /classification per photo.

Three processes talk over real DDS: sample_camera -> classifier_node -> this printer.
--two-stage (`make demo-two-stage`): the sample camera is also a stand-in detector (2x2
mosaics of the photos, each tile a box on /detections); the node classifies each box and
this prints each tile's top-1 from /classified_detections.
--web (`make demo-web`): the sample camera, the classifier and web_view; prints the URL to
open and runs until Ctrl-C (or --timeout). --web --two-stage (`make demo-web
DEMO_ARGS=--two-stage`): the same for the two-stage pipeline (the page lists each box).
"""
import os
import signal
import subprocess
import sys
import time

import rclpy

from .. import resources
from ..errors import Parser
from ..ros_main import init_tool, shutdown_rclpy, spin_once
from . import node_command, spawn
from .echo import Echo, _name


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='efficientnet_lite0')
    parser.add_argument('--encoding', default='bgr8')
    parser.add_argument('--rate', type=float, default=2.0)
    parser.add_argument('--timeout', type=float, default=60.0)
    parser.add_argument('--two-stage', action='store_true',
                        help='classify the boxes of a stand-in detector (mosaic tiles)')
    parser.add_argument('--web', action='store_true',
                        help='also start web_view and print its URL; runs until Ctrl-C '
                             '(--timeout 0) or --timeout seconds')
    parser.add_argument('--port', type=int, default=8080, help='web_view\'s port (--web)')
    parser.add_argument('--source', default='',
                        help='what the sample camera plays: a folder of images, a video or a '
                             'rosbag2 bag directory (its recorded pace); default the photos')
    args = parser.parse_args(argv)

    # DDS stays on this machine unless the caller chose otherwise (the children inherit it).
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    photos = _frame_ids(args.source) if args.source else \
        [p.stem for p in resources.sample_images()]
    if not photos:
        print(f'nothing to play: no sample photos in {resources.samples_dir()} (run make '
              f'setup)' if not args.source else f'nothing to play in {args.source}',
              file=sys.stderr)
        return 2
    if args.web:
        return web(args)
    if args.two_stage:
        return two_stage(args, photos)
    print(f'edge_classifier demo (ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}): '
          f'sample_camera ({_playing(args, photos)}) -> '
          f'classifier_node (model {args.model}) -> /classification', flush=True)
    procs = _classifier_and_camera(args)
    seen = {}

    def show(msg, names):
        name = msg.header.frame_id
        if name in seen:
            return
        seen[name] = msg
        top = ' | '.join(f'{names.get(int(h.class_id), h.class_id)} {h.score:.3f}'
                         for h in msg.results)
        print(f'{name:<12} top-5: {top}', flush=True)

    return _listen(procs, seen, photos, args.timeout, 'Classification',
                   dict(topic='/classification', on_message=show))


def two_stage(args, photos):
    """sample_camera (mosaics + tile boxes) -> classifier_node (detection_topics) -> the
    top-1 of every tile, once per photo."""
    print(f'edge_classifier two-stage demo (ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")})'
          f': sample_camera (2x2 mosaics of {len(photos)} photos, tiles as boxes on '
          f'/detections) -> classifier_node (model {args.model}) -> /classified_detections',
          flush=True)
    procs = _classifier_and_camera(args)
    seen = {}

    def show(msg, names):
        for det in msg.detections:
            if det.id in seen or not det.results:
                continue
            top = det.results[0].hypothesis
            seen[det.id] = top
            box = det.bbox
            print(f'tile {det.id:<12} box {box.size_x:.0f}x{box.size_y:.0f} at '
                  f'({box.center.position.x:.0f}, {box.center.position.y:.0f}): '
                  f'{_name(top.class_id, names)} {top.score:.3f}', flush=True)

    return _listen(procs, seen, photos, args.timeout, 'Detection2DArray',
                   dict(topic='/classified_detections', on_message=show, detections=True,
                        labels='/classification/label_info'))


def _classifier_and_camera(args):
    """[(classifier_node, name), (sample_camera, name)] as processes: the camera plays the
    photos, or (--two-stage) their 2x2 mosaics with the tiles as boxes on /detections."""
    if args.two_stage:
        node = {'model': args.model, 'image_topics': '[/image_raw]',
                'detection_topics': '[/detections]'}
        camera = {'topic': '/image_raw', 'detections_topic': '/detections', 'rate': args.rate}
    else:
        # raw or compressed (--encoding jpeg, a bag of CompressedImage): the node hears both
        node = {'model': args.model, 'compressed_topics': '[image_raw/compressed]'}
        camera = {'encoding': args.encoding, 'rate': args.rate, 'frame_id_from_file': 'true'}
    if args.source:
        camera['source'] = args.source
    return [(spawn(node_command('edge_classifier.node', node)), 'classifier_node'),
            (spawn(node_command('edge_classifier.tools.sample_camera', camera)),
             'sample_camera')]


def _playing(args, photos):
    if args.source:
        return f'{args.source}: {len(photos)} frame ids, as recorded'
    return f'{len(photos)} photos, {args.encoding}, {args.rate:g} Hz'


def _frame_ids(source):
    """What the demo waits for when the camera plays `source`: a bag's distinct frame_ids
    (read once with the bag tool), else the images' names."""
    from ..errors import EdgeClassifierError
    from .bag import image_topics, open_bag, typestore
    from .sample_camera import is_bag, load_frames
    try:
        if not is_bag(source):
            return [name for name, _ in load_frames(source)]
        reader = open_bag(source)
        try:
            topic = sorted(image_topics(reader, source))[0]
            conns = [c for c in reader.connections if c.topic == topic]
            store = typestore()
            return sorted({store.deserialize_cdr(raw, c.msgtype).header.frame_id
                           for c, _, raw in reader.messages(connections=conns)})
        finally:
            reader.close()
    except EdgeClassifierError as exc:
        print(f'demo: error: {exc}', file=sys.stderr)
        return []


def _listen(procs, seen, photos, timeout, what, echo_args):
    """Spin an Echo (echo_args) until every photo is in `seen` (or the timeout, or a
    process exits), stop the processes, print the summary line; the exit status."""
    init_tool()
    listener = rclpy.create_node('edge_classifier_demo')
    echo = Echo(listener, **echo_args)
    status = _spin(listener, procs, lambda: len(seen) >= len(photos), timeout,
                   lambda: f'{len(seen)}/{len(photos)} photos')
    codes = _stop_all(procs)
    listener.destroy_node()
    shutdown_rclpy()
    print(f'received {len(echo.received)} {what} messages covering {len(seen)}/'
          f'{len(photos)} photos; camera exit {codes[1]}, node exit {codes[0]}', flush=True)
    return status


def web(args):
    """sample_camera -> classifier_node -> web_view: the page to open, until Ctrl-C."""
    procs = _classifier_and_camera(args) + [(spawn(node_command(
        'edge_classifier.web_view', {'port': args.port})), 'web_view')]
    print(f'edge_classifier web demo (ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}): '
          f'sample_camera{" (stand-in detector)" if args.two_stage else ""} -> classifier_node '
          f'(model {args.model}) -> web_view\n'
          f'open http://127.0.0.1:{args.port}/ in a browser (Ctrl-C stops)', flush=True)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    status = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            failed = [(p, name) for p, name in procs if p.poll() is not None]
            if failed:
                print(f'{failed[0][1]} exited with {failed[0][0].returncode}', file=sys.stderr)
                status = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    codes = _stop_all(procs)
    print(f'stopped: node exit {codes[0]}, camera exit {codes[1]}, web_view exit {codes[2]}',
          flush=True)
    return status


def _spin(listener, procs, done, timeout, progress=lambda: ''):
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if time.monotonic() > deadline:
                print(f'timed out after {timeout:g} s: got {progress()}', file=sys.stderr)
                return 1
            for proc, name in procs:
                if proc.poll() is not None:
                    print(f'{name} exited with {proc.returncode}', file=sys.stderr)
                    return 1
            spin_once(listener, 0.1)
    except KeyboardInterrupt:   # Ctrl-C, SIGTERM
        return 130
    return 0


def _stop_all(procs):
    for proc, _ in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = []
    for proc, _ in procs:
        try:
            codes.append(proc.wait(timeout=10))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append('killed')
    return codes


if __name__ == '__main__':
    sys.exit(main())
