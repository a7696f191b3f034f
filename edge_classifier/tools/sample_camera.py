"""A camera for demos and tests: publishes photos (the bundled samples, a folder, or a
video file) at a rate, as sensor_msgs/Image in a chosen encoding or as CompressedImage.

    ros2 run edge_classifier sample_camera --ros-args -p encoding:=nv12 -p rate:=30

Parameters: source ('' = the bundled sample photos; a folder; a video file; a rosbag2 bag
directory, below), topic
(image_raw, relative: a namespace or remap moves it; compressed encodings publish on
<topic>/compressed), encoding (bgr8, rgb8,
bgra8, rgba8, mono8, yuv422_yuy2, uyvy, nv12, jpeg, png), rate (Hz), width/height (0 =
keep the photo's size), frame_id, frame_id_from_file (frame_id = the photo's file name
stem), count (0 = forever), reliability (reliable, like most camera drivers, or
best_effort).

A stand-in detector for the two-stage pipeline: with `detections_topic` set, each frame is
a mosaic of `mosaic` x `mosaic` photos (default 2 x 2, 640x480 unless width/height say
otherwise) and a vision_msgs/Detection2DArray with one box per tile (id = the photo's name)
is published there with the image's header, as a detector would:

    ros2 run edge_classifier sample_camera --ros-args -p detections_topic:=detections

A recording: with `source` a rosbag2 bag directory (.db3 or .mcap, read with rosbags), the
bag's image topic (`bag_topic`; '' = its only, or first, Image/CompressedImage topic) is
replayed at its recorded pace (the bag's own times between messages), as recorded (its
encoding; CompressedImage on <topic>/compressed), with the recorded header stamps
(`stamps:=original`, as `ros2 bag play` does) or the time of publishing (`stamps:=now`);
`loop` (default true) starts it again at the end, else the camera stops publishing. The
replay starts once a subscriber is there (at most 10 s after start: a bag played once is
not lost to discovery). rate,
width, height and encoding do not apply to a bag.
"""
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray

from .. import resources
from .encode import COMPRESSED, ENCODINGS, encode_compressed, encode_raw
from ..errors import CameraError
from ..frames import IMAGE_SUFFIXES
from ..params import Param
from ..ros_main import declare_rows, row_help, run_node, usage


PARAMS = (  # rows of the same kind as the classifier's (params.Param), all read-only
    Param('source', 'str', '', "What to play: '' = the bundled sample photos; a folder of "
          'images, an image or video file, or a rosbag2 bag directory.'),
    Param('topic', 'str', 'image_raw', 'Image topic (relative); compressed encodings publish '
          'on <topic>/compressed.'),
    Param('encoding', 'str', 'bgr8', 'Encoding of the published frames.', choices=ENCODINGS),
    Param('rate', 'float', 2.0, 'Frames per second (photos, a folder, a video).', above=0,
          unit='Hz'),
    Param('width', 'int', 0, 'Frame width in pixels; 0 = the photo\'s own.', low=0),
    Param('height', 'int', 0, 'Frame height in pixels; 0 = the photo\'s own.', low=0),
    Param('frame_id', 'str', 'camera_optical_frame', 'header.frame_id of every frame.'),
    Param('frame_id_from_file', 'bool', False, 'header.frame_id = the photo\'s file name stem '
          'instead.'),
    Param('count', 'int', 0, 'Frames to publish, then stop; 0 = forever.', low=0),
    Param('reliability', 'str', 'reliable', 'Publisher QoS: reliable (like most camera '
          'drivers) or best_effort.', choices=('reliable', 'best_effort')),
    Param('detections_topic', 'str', '', 'Also be a stand-in detector: mosaics of the photos, '
          'their tiles as a Detection2DArray on this topic.'),
    Param('mosaic', 'int', 2, 'Tiles per side of the stand-in detector\'s mosaics.', low=1,
          high=8, unit='tiles per side'),
    Param('bag_topic', 'str', '', "A bag's image topic to replay; '' = its first."),
    Param('stamps', 'str', 'original', 'A bag\'s header stamps: original (as recorded, like '
          'ros2 bag play) or now.', choices=('original', 'now')),
    Param('loop', 'bool', True, 'Play a bag again from the start at its end (false: once).'),
)
SUBSCRIBER_WAIT = 10.0   # s a bag's replay waits for a first subscriber before it starts


def is_bag(source):
    """True for a rosbag2 bag directory (metadata.yaml in it)."""
    return bool(source) and (Path(source).expanduser() / 'metadata.yaml').is_file()


def load_frames(source, width=0, height=0):
    """[(name, bgr)] from '' (bundled samples), a folder of images, or a video file."""
    if not source:
        paths = resources.sample_images()
        if not paths:
            raise CameraError(f'no sample photos in {resources.samples_dir()}: run '
                              f'`make setup` or `python3 -m edge_classifier.tools.assets`')
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not paths:
                raise CameraError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {path}')
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            paths = [path]
        elif path.is_file():
            return _video_frames(path, width, height)
        else:
            raise CameraError(f'camera source {path} does not exist')
    frames = []
    for p in paths:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            raise CameraError(f'{p}: not an image OpenCV can read')
        frames.append((p.stem, _resize(image, width, height)))
    return frames


def _video_frames(path, width, height, limit=300):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, image = cap.read()
        if not ok:
            break
        frames.append((f'{path.stem}_{len(frames):04d}', _resize(image, width, height)))
    cap.release()
    if not frames:
        raise CameraError(f'{path}: no frames could be read (not a video OpenCV can decode?)')
    return frames


def mosaic(frames, grid, width, height, start=0):
    """A width x height BGR frame of grid x grid tiles (frames[start], frames[start + 1],
    ..., cyclic; each photo resized to its tile) and its tiles: [(name, (cx, cy, w, h))]."""
    tile_w, tile_h = width // grid, height // grid
    canvas = np.zeros((tile_h * grid, tile_w * grid, 3), np.uint8)
    tiles = []
    for i in range(grid * grid):
        name, image = frames[(start + i) % len(frames)]
        row, col = divmod(i, grid)
        x, y = col * tile_w, row * tile_h
        canvas[y:y + tile_h, x:x + tile_w] = cv2.resize(image, (tile_w, tile_h),
                                                        interpolation=cv2.INTER_AREA)
        tiles.append((name, (x + tile_w / 2, y + tile_h / 2, float(tile_w), float(tile_h))))
    return canvas, tiles


def detection_array(tiles):
    """[(name, (cx, cy, w, h))] as a Detection2DArray (header left to the caller)."""
    msg = Detection2DArray()
    for name, (cx, cy, w, h) in tiles:
        bbox = BoundingBox2D(size_x=w, size_y=h)
        bbox.center.position.x, bbox.center.position.y = cx, cy
        msg.detections.append(Detection2D(bbox=bbox, id=name))
    return msg


def _resize(image, width, height):
    if width and height and (image.shape[1], image.shape[0]) != (width, height):
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image


class SampleCamera(Node):

    def __init__(self, **kwargs):
        super().__init__('sample_camera', **kwargs)
        p = declare_rows(self, PARAMS, CameraError)   # rate:=30 is as good as rate:=30.0
        self.params = p
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE
                         if p['reliability'] == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
        if is_bag(p['source']):
            self._start_bag(qos)
            return
        # Encode once: publishing is then only a copy into the message.
        self.detections = None
        if p['detections_topic']:
            photos = load_frames(p['source'])
            grid = p['mosaic']
            count = -(-len(photos) // (grid * grid))  # every photo in some frame
            frames, self.detections = [], []
            for i in range(count):
                image, tiles = mosaic(photos, grid, p['width'] or 640, p['height'] or 480,
                                      i * grid * grid)
                frames.append(('+'.join(name for name, _ in tiles), image))
                self.detections.append(detection_array(tiles))
        else:
            frames = load_frames(p['source'], p['width'], p['height'])
        self.messages = [(name, self._encode(image)) for name, image in frames]
        compressed = p['encoding'] in COMPRESSED
        topic = p['topic'].rstrip('/') + '/compressed' if compressed else p['topic']
        self.pub = self.create_publisher(CompressedImage if compressed else Image, topic, qos)
        self.det_pub = None
        if self.detections is not None:
            self.det_pub = self.create_publisher(Detection2DArray, p['detections_topic'], 10)
        self.sent = 0
        self.timer = self.create_timer(1.0 / p['rate'], self._tick)
        self.get_logger().info(
            f'publishing {len(self.messages)} frames on {topic} as {p["encoding"]} at '
            f'{p["rate"]} Hz' + (f', their tiles as detections on '
                                 f'{self.det_pub.topic_name}' if self.det_pub else ''))

    def _start_bag(self, qos):
        """Replay a bag's image topic (see the module's docstring)."""
        from .bag import COMPRESSED as BAG_COMPRESSED, BagError, image_topics, open_bag
        p = self.params
        path = Path(p['source']).expanduser()
        self.bag = open_bag(path)
        try:
            wanted = [p['bag_topic']] if p['bag_topic'] else None
            topics = image_topics(self.bag, path, wanted)
        except BagError:
            self.bag.close()
            raise
        self.bag_topic = sorted(topics)[0]
        compressed = topics[self.bag_topic] == BAG_COMPRESSED
        self.bag_type = CompressedImage if compressed else Image
        self.bag_conns = [c for c in self.bag.connections if c.topic == self.bag_topic]
        topic = p['topic'].rstrip('/') + '/compressed' if compressed else p['topic']
        self.pub = self.create_publisher(self.bag_type, topic, qos)
        self.sent, self.rounds = 0, 0
        self.timer = None
        self._bag_messages = None
        self._next = None
        self._t0 = None        # (bag time, clock time) of the first message of this round
        self._created = time.monotonic()
        self.get_logger().info(
            f'replaying {self.bag_topic} of {path} ({sum(c.msgcount for c in self.bag_conns)} '
            f'messages) on {self.pub.topic_name} at its recorded pace, '
            f'{p["stamps"]} stamps' + (', looping' if p['loop'] else ', once'))
        self._arm(0.0)

    def _arm(self, delay):
        if self.timer is not None:
            self.destroy_timer(self.timer)
        self.timer = self.create_timer(max(delay, 1e-4), self._replay)

    def _read_next(self):
        if self._bag_messages is None:
            self._bag_messages = self.bag.messages(connections=self.bag_conns)
            self._t0 = None
        try:
            _, stamp, raw = next(self._bag_messages)
            return stamp, bytes(raw)
        except StopIteration:
            self._bag_messages = None
            self.rounds += 1
            return None

    def _replay(self):
        """Publish the message that is due, then sleep until the next one is."""
        self.destroy_timer(self.timer)
        self.timer = None
        if self.sent == 0 and self.pub.get_subscription_count() == 0 and \
                time.monotonic() - self._created < SUBSCRIBER_WAIT:
            self._arm(0.05)   # the first frame waits (a while) for someone to hear it
            return
        item = self._next or self._read_next()
        if item is None:
            if not self.params['loop'] or self.sent == 0:
                self.get_logger().info(f'end of the bag: {self.sent} frames published')
                return
            item = self._read_next()
        stamp, raw = item
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = (stamp, now)
        if self.params['stamps'] == 'now':
            msg = deserialize_message(raw, self.bag_type)
            msg.header.stamp = self.get_clock().now().to_msg()
            raw = msg
        try:
            self.pub.publish(raw)   # the recorded bytes themselves, with original stamps
        except Exception as exc:  # RCLError under load: keep the camera going
            self.get_logger().warning(f'publish failed: {exc}', throttle_duration_sec=5.0)
        self.sent += 1
        self._next = self._read_next()
        if self._next is None and not self.params['loop']:
            self.get_logger().info(f'end of the bag: {self.sent} frames published')
            return
        if self._next is None:
            self._arm(0.0)
            return
        due = self._t0[1] + (self._next[0] - self._t0[0]) * 1e-9
        self._arm(due - time.monotonic())

    def destroy_node(self):
        bag = getattr(self, 'bag', None)
        if bag is not None:
            bag.close()
        return super().destroy_node()

    def _encode(self, image):
        enc = self.params['encoding']
        if enc in COMPRESSED:
            msg = CompressedImage()
            msg.format, msg.data = encode_compressed(image, enc)
            return msg
        raw = encode_raw(image, enc)
        msg = Image()
        msg.encoding, msg.height, msg.width, msg.step = raw.encoding, raw.height, raw.width, \
            raw.step
        msg.is_bigendian = 0
        msg.data = raw.data
        return msg

    def _tick(self):
        count = self.params['count']
        if count and self.sent >= count:
            self.timer.cancel()
            return
        index = self.sent % len(self.messages)
        name, msg = self.messages[index]
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = name if self.params['frame_id_from_file'] else \
            self.params['frame_id']
        try:
            self.pub.publish(msg)
            if self.det_pub is not None:  # a detector answers after its image
                detections = self.detections[index]
                detections.header = msg.header
                self.det_pub.publish(detections)
        except Exception as exc:  # RCLError under load: keep the camera going
            self.get_logger().warning(f'publish failed: {exc}', throttle_duration_sec=5.0)
        self.sent += 1


def main(args=None):
    return run_node(SampleCamera, 'sample_camera', args, large_frames=True,
                    help_text=usage('sample_camera', __doc__, row_help(PARAMS)))


if __name__ == '__main__':
    sys.exit(main())
