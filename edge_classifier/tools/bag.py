"""Recorded data: classify a rosbag2 bag offline, or compare two models on it.

    edge-classifier-bag classify BAG --output OUT [--model M] [--topics T ...]
                                     [--detections T] [--workers N]
    edge-classifier-bag compare BAG --models A,B [--topics T ...] [--output DIR] [--worst N]
    (also: python -m edge_classifier.tools.bag ...)

BAG is a rosbag2 bag directory (metadata.yaml and its files), SQLite3 (.db3, the default
storage up to Humble, the RDK X5's distro) or MCAP (.mcap, from Iron on). It is read with
`rosbags` (pure Python: no ROS install needed). Every sensor_msgs/Image and
sensor_msgs/CompressedImage message of the chosen topics (every image topic by default)
takes exactly the node's path: the message -> Frame (frames.py, every encoding the node
takes) -> NV12 -> backend -> top-k (Classifier), through the node's WorkerPool with
`--workers` threads. A message that cannot be used (truncated, an unknown encoding) is
counted malformed and the rest goes on.

classify writes OUT, a new rosbag2 bag (MCAP) with the input messages and, per image
topic T: T/classification (vision_msgs/Classification, the image's header, the top-k),
T/classification/label_info (vision_msgs/LabelInfo, once) and, with --detections D (a
vision_msgs/Detection2DArray topic paired with its image by header, as the node pairs
them), T/classified_detections (the array with each box's top-k, as the node publishes
it). Each output message has its image's time in the bag, so `ros2 bag play OUT` plays
the results beside their frames; Foxglove opens it. A summary table per topic ends it.

compare runs two models over the same frames: per topic how often their top-1 agree,
each one's mean top-1 score and frames per second; with --output DIR, the --worst frames
on which they disagree most, each written as one image with both models' results drawn.
"""
import collections
import functools
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import resources
from ..boxes import boxes_of
from ..config import load_config
from .encode import ENCODINGS
from ..errors import BagError, Parser, cli
from ..frames import compressed_msg_to_frame, image_msg_to_frame
from ..pairing import header_key
from ..params import BACKENDS, DEFAULT_MAX_IMAGE_PIXELS
from ..pipeline import Classifier
from ..pool import WorkerPool

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE, COMPRESSED)
DETECTIONS = 'vision_msgs/msg/Detection2DArray'
CLASSIFICATION = 'vision_msgs/msg/Classification'
LABEL_INFO = 'vision_msgs/msg/LabelInfo'


# ---- reading ------------------------------------------------------------------------------
_TYPESTORE = None


def vision_msgs_dir():
    """Where vision_msgs' .msg definitions are: its share directory (a ROS install, or the
    standalone environment's overlay), else this checkout's copy."""
    try:
        from ament_index_python.packages import get_package_share_directory
        path = Path(get_package_share_directory('vision_msgs')) / 'msg'
        if path.is_dir():
            return path
    except Exception:  # not found, or no ament index here
        pass
    root = resources.source_root()
    if root is not None and (root / 'standalone' / 'vision_msgs' / 'msg').is_dir():
        return root / 'standalone' / 'vision_msgs' / 'msg'
    raise BagError('cannot find the vision_msgs message definitions (share/vision_msgs/msg): '
                   'install vision_msgs (ROS: apt install ros-$ROS_DISTRO-vision-msgs; '
                   'standalone: make setup)')


def typestore():
    """rosbags' message types: the ROS 2 common interfaces (sensor_msgs and std_msgs are the
    same from Humble on) and vision_msgs from its .msg files."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore
        store = get_typestore(Stores.ROS2_HUMBLE)
        types = {}
        for path in sorted(vision_msgs_dir().glob('*.msg')):
            types.update(get_types_from_msg(path.read_text(), f'vision_msgs/msg/{path.stem}'))
        store.register(types)
        _TYPESTORE = store
    return _TYPESTORE


def open_bag(path):
    """A rosbags Reader, opened, for a bag directory (or a .db3/.mcap file in one)."""
    from rosbags.rosbag2 import Reader
    path = Path(path).expanduser()
    if not path.exists():
        raise BagError(f'{path}: no such bag (a rosbag2 bag is a directory holding '
                       f'metadata.yaml, as `ros2 bag record -o NAME` writes it)')
    if path.is_file():
        if (path.parent / 'metadata.yaml').is_file():
            path = path.parent
        else:
            raise BagError(f'{path}: a rosbag2 bag is a directory with metadata.yaml beside '
                           f'its .db3/.mcap files; give the directory')
    if not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path}: no metadata.yaml: not a rosbag2 bag directory (an '
                       f'interrupted recording? `ros2 bag reindex {path}` writes one)')
    reader = Reader(path)
    try:
        reader.open()
    except Exception as exc:  # rosbags raises its own ReaderError types
        raise BagError(f'{path}: cannot read this bag: {exc}') from exc
    return reader


def image_topics(reader, path, wanted=None):
    """{topic: msgtype} of the image topics to classify: `wanted` (each must exist and be an
    Image or CompressedImage topic), or every image topic of the bag."""
    types = {c.topic: c.msgtype for c in reader.connections}
    images = {t: m for t, m in types.items() if m in IMAGE_TYPES}
    if not wanted:
        if not images:
            raise BagError(f'{path}: no sensor_msgs/Image or CompressedImage topic in this bag '
                           f'(its topics: {_listing(types)})')
        return images
    chosen = {}
    for topic in wanted:
        if topic not in types:
            raise BagError(f'{path}: no topic {topic} in this bag; its image topics: '
                           f'{_listing(images) or "none"}')
        if types[topic] not in IMAGE_TYPES:
            raise BagError(f'{path}: topic {topic} is {types[topic]}, not sensor_msgs/Image or '
                           f'CompressedImage; its image topics: {_listing(images) or "none"}')
        chosen[topic] = types[topic]
    return chosen


def _listing(types):
    return ', '.join(f'{t} ({m})' for t, m in sorted(types.items()))


def read_detections(reader, path, topic):
    """{(sec, nanosec, frame_id): raw CDR} of a Detection2DArray topic (read once, small)."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        raise BagError(f'{path}: no topic {topic} (--detections) in this bag')
    if conns[0].msgtype != DETECTIONS:
        raise BagError(f'{path}: topic {topic} (--detections) is {conns[0].msgtype}, not '
                       f'{DETECTIONS}')
    store, found = typestore(), {}
    for conn, _, raw in _messages(reader, path, conns):
        try:
            msg = store.deserialize_cdr(raw, conn.msgtype)
        except Exception:  # a damaged array pairs with nothing: its image is unmatched
            continue
        found[header_key(msg.header)] = msg
    return found


def _messages(reader, path, connections):
    try:
        yield from reader.messages(connections=connections)
    except Exception as exc:  # a damaged storage file: what was read stands
        raise BagError(f'{path}: the bag is damaged after the messages read so far: '
                       f'{exc}') from exc


def to_frame(msgtype, msg, geometry, max_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """A deserialized Image or CompressedImage -> Frame, as the node's subscription does it;
    FrameError when it cannot be used (counted malformed)."""
    if msgtype == IMAGE:
        return image_msg_to_frame(msg)
    return compressed_msg_to_frame(msg, max_pixels, geometry)


# ---- classifying --------------------------------------------------------------------------
@dataclass
class Outcome:
    """What became of one image message."""
    topic: str
    time: int                     # its time in the bag (ns)
    raw: bytes                    # its CDR bytes, as recorded
    msg: object = None            # deserialized (None when that failed)
    hypotheses: list = None       # whole frame: top-k; None when not classified
    boxes: list = None            # two-stage: per detection its top-k (None: skipped)
    detections: object = None     # two-stage: the paired Detection2DArray
    plan: object = None           # two-stage: the BoxPlan (where each box was cut)
    frame: object = None          # the decoded Frame (kept only when asked)
    error: str = ''               # why it was not classified ('' when it was)
    kind: str = ''                # classified, malformed, error, unmatched
    inference_s: float = 0.0


def run_images(clf, items, workers, pair=None, keep_frames=False, on_outcome=None):
    """Classify bag image messages through the node's WorkerPool; on_outcome(Outcome) is
    called for every item ((topic, msgtype, time, raw CDR)), one at a time, in the order of
    `items`. Messages of other types pass through ('copied'). Nothing is dropped: each of
    workers + 1 lanes (pool sources) holds one frame at a time, so the pool's newest-wins
    slot never replaces a waiting frame. `pair(msg) -> Detection2DArray or None` turns on
    the two-stage path (an image without detections is 'unmatched', not classified)."""
    geometry = clf.geometry
    lanes = queue.Queue()
    for i in range(workers + 1):
        lanes.put(f'lane{i}')
    holding = {}                      # lane -> (index, Outcome) in flight there
    done = {}                         # index -> Outcome, until its turn to be emitted
    lock = threading.Lock()           # holding, done
    emit_lock = threading.Lock()      # one emitter at a time, in order
    state = {'next': 0}

    def settle(index, outcome, lane=None):
        try:
            with emit_lock:
                with lock:
                    done[index] = outcome
                    holding.pop(lane, None)
                    ready = []
                    while state['next'] in done:
                        ready.append(done.pop(state['next']))
                        state['next'] += 1
                for item in ready:
                    if on_outcome is not None and 'failed' not in state:
                        on_outcome(item)
        except BaseException as exc:  # e.g. the output disk is full: stop, say why
            state.setdefault('failed', exc)
        finally:
            if lane is not None:
                lanes.put(lane)

    def on_result(result):
        index, outcome = result.meta
        if result.boxes is not None:
            outcome.boxes, outcome.plan = result.boxes, result.plan
        else:
            outcome.hypotheses = result.hypotheses
        if keep_frames:
            outcome.frame = result.frame
        outcome.kind, outcome.inference_s = 'classified', result.inference_s
        settle(index, outcome, result.source)
        return True

    def on_error(source, kind, exc):
        with lock:
            index, outcome = holding[source]
        outcome.kind, outcome.error = ('malformed' if kind == 'malformed' else 'error'), str(exc)
        settle(index, outcome, source)

    store = typestore()
    pool = WorkerPool(clf, workers, on_result=on_result, on_error=on_error).start()
    try:
        for index, (topic, msgtype, stamp, raw) in enumerate(items):
            if 'failed' in state:
                break
            outcome = Outcome(topic, stamp, raw)
            if msgtype not in IMAGE_TYPES:
                outcome.kind = 'copied'
                settle(index, outcome)
                continue
            try:
                outcome.msg = store.deserialize_cdr(raw, msgtype)
            except Exception as exc:  # truncated, or not this type: rosbags' own errors
                outcome.kind = 'malformed'
                outcome.error = f'{msgtype} message of {len(raw)} bytes cannot be read: {exc}'
                settle(index, outcome)
                continue
            boxes = None
            if pair is not None and msgtype == IMAGE:
                outcome.detections = pair(outcome.msg)
                if outcome.detections is None:
                    outcome.kind, outcome.error = 'unmatched', 'no detections with its header'
                    settle(index, outcome)
                    continue
                boxes = _Boxes(outcome.detections)
            lane = lanes.get()
            if 'failed' in state:
                lanes.put(lane)
                break
            with lock:
                holding[lane] = (index, outcome)
            pool.submit(lane, functools.partial(to_frame, msgtype, outcome.msg, geometry),
                        (index, outcome), boxes=boxes)
        for _ in range(workers + 1):   # every lane back: every frame settled
            lanes.get()
    finally:
        pool.stop()
    if 'failed' in state:
        raise state['failed']


class _Boxes:
    __slots__ = ('msg',)

    def __init__(self, msg):
        self.msg = msg

    def __call__(self):
        return boxes_of(self.msg)


@dataclass
class TopicSummary:
    frames: int = 0
    classified: int = 0
    malformed: int = 0
    unmatched: int = 0
    errors: int = 0
    boxes: int = 0
    top1: collections.Counter = field(default_factory=collections.Counter)
    scores: list = field(default_factory=list)
    first_error: str = ''

    def add(self, outcome):
        self.frames += 1
        if outcome.kind == 'classified':
            self.classified += 1
            tops = [outcome.hypotheses] if outcome.boxes is None else \
                [b for b in outcome.boxes if b is not None]
            self.boxes += 0 if outcome.boxes is None else len(tops)
            for hyps in tops:
                if hyps:
                    self.top1[hyps[0].class_name or hyps[0].class_id] += 1
                    self.scores.append(hyps[0].score)
        else:
            column = outcome.kind if outcome.kind in ('malformed', 'unmatched') else 'errors'
            setattr(self, column, getattr(self, column) + 1)
            self.first_error = self.first_error or outcome.error


def summary_table(summaries, seconds):
    lines = ['| topic | frames | classified | malformed | unmatched | most frequent top-1 | '
             'mean top-1 score | frames/s |', '|---|---|---|---|---|---|---|---|']
    for topic, s in summaries.items():
        common = ', '.join(f'{name} ({n})' for name, n in s.top1.most_common(3)) or '-'
        mean = f'{np.mean(s.scores):.3f}' if s.scores else '-'
        lines.append(f'| {topic} | {s.frames} | {s.classified} | {s.malformed} | '
                     f'{s.unmatched} | {common} | {mean} | '
                     f'{s.frames / seconds if seconds > 0 else 0:.1f} |')
    return '\n'.join(lines)


# ---- writing ------------------------------------------------------------------------------
class OutputBag:
    """The output bag (MCAP): input messages copied as recorded, results beside them."""

    def __init__(self, path, reader, topics, detections_topic, clf):
        from rosbags.rosbag2 import StoragePlugin, Writer
        path = Path(path).expanduser()
        if path.exists():
            raise BagError(f'{path} exists: choose a new --output (a bag is never overwritten)')
        self.store = typestore()
        self.writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.conns, self.out = {}, {}
        for conn in reader.connections:
            if conn.topic in topics or conn.topic == detections_topic:
                if conn.topic not in self.conns:
                    self.conns[conn.topic] = self.writer.add_connection(
                        conn.topic, conn.msgtype, typestore=self.store,
                        offered_qos_profiles=_qos(conn))
        latched = _latched_qos()
        for topic, msgtype in topics.items():
            base = topic.rstrip('/') + '/classification'
            self.out[topic, 'labels'] = self.writer.add_connection(
                base + '/label_info', LABEL_INFO, typestore=self.store,
                offered_qos_profiles=latched)
            if not detections_topic or msgtype != IMAGE:   # whole frames
                self.out[topic] = self.writer.add_connection(base, CLASSIFICATION,
                                                             typestore=self.store)
            else:   # the boxes of its detector, as the node pairs them
                self.out[topic, 'det'] = self.writer.add_connection(
                    topic.rstrip('/') + '/classified_detections', DETECTIONS,
                    typestore=self.store)
        self.labels = clf.labels or []
        self.threshold = clf.settings.score_threshold
        self.labelled = set()
        self.path = path

    def write(self, outcome):
        """A message as recorded, then (a classified image) its results at its time."""
        self.writer.write(self.conns[outcome.topic], outcome.time, outcome.raw)
        if outcome.kind != 'classified':
            return
        t = self.store.types
        header = outcome.msg.header
        if outcome.topic not in self.labelled:   # the label map once, before the results
            self.labelled.add(outcome.topic)
            info = t['vision_msgs/msg/LabelInfo'](
                header=header, class_map=[t['vision_msgs/msg/VisionClass'](
                    class_id=i, class_name=name) for i, name in enumerate(self.labels)],
                threshold=float(self.threshold))
            self.writer.write(self.out[outcome.topic, 'labels'], outcome.time,
                              self.store.serialize_cdr(info, LABEL_INFO))
        if outcome.boxes is None:
            msg = t[CLASSIFICATION](header=header, results=[
                t['vision_msgs/msg/ObjectHypothesis'](class_id=h.class_id, score=float(h.score))
                for h in outcome.hypotheses])
            self.writer.write(self.out[outcome.topic], outcome.time,
                              self.store.serialize_cdr(msg, CLASSIFICATION))
            return
        dets = outcome.detections
        for detection, hyps in zip(dets.detections, outcome.boxes):
            detection.results = [t['vision_msgs/msg/ObjectHypothesisWithPose'](
                hypothesis=t['vision_msgs/msg/ObjectHypothesis'](class_id=h.class_id,
                                                                 score=float(h.score)),
                pose=t['geometry_msgs/msg/PoseWithCovariance'](
                    pose=t['geometry_msgs/msg/Pose'](
                        position=t['geometry_msgs/msg/Point'](x=0.0, y=0.0, z=0.0),
                        orientation=t['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0,
                                                                      w=1.0)),
                    covariance=np.zeros(36, np.float64))) for h in hyps or ()]
        out = t[DETECTIONS](header=header, detections=dets.detections)
        self.writer.write(self.out[outcome.topic, 'det'], outcome.time,
                          self.store.serialize_cdr(out, DETECTIONS))

    def close(self):
        self.writer.close()


def _qos(conn):
    return list(getattr(conn.ext, 'offered_qos_profiles', None) or [])


def _latched_qos():
    """Reliable, transient local, depth 1: how the node offers label_info (so `ros2 bag
    play` offers it that way too and late subscribers get it)."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    zero = QosTime(0, 0)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                zero, zero, QosLiveliness.SYSTEM_DEFAULT, zero, False)]


# ---- the commands -------------------------------------------------------------------------
def _classifier(model, backend=None, models_dir=None):
    cfg = load_config(model)
    changes = {k: v for k, v in (('backend', backend), ('models_dir', models_dir)) if v}
    return Classifier(cfg.replace(**changes) if changes else cfg)


def _items(reader, path, topics):
    conns = [c for c in reader.connections if c.topic in topics]
    for conn, stamp, raw in _messages(reader, path, conns):
        yield conn.topic, conn.msgtype, stamp, bytes(raw)


def _pairing(detections):
    """An image message -> the Detection2DArray with its header, or None (exact match:
    every ROS detector copies its image's header, as the node's pairing assumes)."""
    def pair(msg):
        return detections.get(header_key(msg.header))
    return pair


def _progress(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='frame', file=sys.stderr, disable=None)


def classify(args):
    reader = open_bag(args.bag)
    path = Path(args.bag)
    try:
        topics = image_topics(reader, path, args.topics)
        detections = read_detections(reader, path, args.detections) if args.detections \
            else None
        if detections is not None and not any(m == IMAGE for m in topics.values()):
            raise BagError(f'{path}: --detections pairs with sensor_msgs/Image topics only; '
                           f'the chosen topics are compressed')
        clf = _classifier(args.model, args.backend, args.models_dir)
        try:
            out = OutputBag(args.output, reader, topics, args.detections, clf)
            summaries = {t: TopicSummary() for t in topics}
            total = sum(c.msgcount for c in reader.connections if c.topic in topics)
            bar = _progress(total, 'classify')
            pair = None if detections is None else _pairing(detections)

            def on_outcome(outcome):
                out.write(outcome)
                if outcome.kind != 'copied':   # the detections pass through
                    summaries[outcome.topic].add(outcome)
                    bar.update(1)

            start = time.perf_counter()
            try:
                run_images(clf, _items(reader, path, [*topics, args.detections]),
                           args.workers or clf.cfg.workers, pair, on_outcome=on_outcome)
            finally:
                seconds = time.perf_counter() - start
                bar.close()
                out.close()
        finally:
            clf.close()
    finally:
        reader.close()
    print(f'{path} -> {out.path} (model {clf.cfg.model_name}, '
          f'{args.workers or clf.cfg.workers} workers, {seconds:.1f} s)')
    print(summary_table(summaries, seconds))
    for topic, s in summaries.items():
        if s.first_error:
            print(f'{topic}: {s.malformed + s.errors + s.unmatched} frame(s) not classified; '
                  f'the first: {s.first_error}')
    return 0


def compare(args):
    names = [m for m in args.models.split(',') if m]
    if len(names) != 2:
        raise BagError(f'--models takes two models, A,B (got {args.models!r})')
    reader = open_bag(args.bag)
    path = Path(args.bag)
    runs = []
    try:
        topics = image_topics(reader, path, args.topics)
        total = sum(c.msgcount for c in reader.connections if c.topic in topics)
        for name in names:
            clf = _classifier(name, args.backend, args.models_dir)
            got, bar = [], _progress(total, name)

            def on_outcome(outcome, got=got, bar=bar):
                outcome.raw = b''   # frames are kept (--output) only for the drawings
                got.append(outcome)
                bar.update(1)

            start = time.perf_counter()
            try:
                run_images(clf, _items(reader, path, topics), args.workers or clf.cfg.workers,
                           keep_frames=bool(args.output), on_outcome=on_outcome)
            finally:
                bar.close()
                seconds = time.perf_counter() - start
                clf.close()
            runs.append((clf.cfg.model_name, got, seconds))
    finally:
        reader.close()
    (a_name, a, a_s), (b_name, b, b_s) = runs
    print(f'{path}: {a_name} vs {b_name}')
    print(f'| topic | frames | top-1 agree | {a_name} mean top-1 | {b_name} mean top-1 | '
          f'{a_name} frames/s | {b_name} frames/s |')
    print('|---|---|---|---|---|---|---|')
    pairs = [(x, y) for x, y in zip(a, b) if x.kind == y.kind == 'classified'
             and x.hypotheses and y.hypotheses]
    for topic in topics:
        mine = [(x, y) for x, y in pairs if x.topic == topic]
        frames = sum(o.topic == topic for o in a)
        agree = sum(x.hypotheses[0].class_id == y.hypotheses[0].class_id for x, y in mine)
        ma = np.mean([x.hypotheses[0].score for x, _ in mine]) if mine else float('nan')
        mb = np.mean([y.hypotheses[0].score for _, y in mine]) if mine else float('nan')
        share = f'{agree}/{len(mine)} ({100.0 * agree / len(mine):.1f} %)' if mine else '-'
        print(f'| {topic} | {frames} | {share} | {ma:.3f} | {mb:.3f} | '
              f'{len(a) / a_s:.1f} | {len(b) / b_s:.1f} |')
    if args.output:
        written = write_disagreements(pairs, a_name, b_name, Path(args.output), args.worst)
        print(f'{len(written)} frame(s) where they disagree most: {args.output}')
    return 0


def disagreement(x, y):
    """How much two results disagree: 0 when the top-1 agree, else the sum of what each
    model gives its own top-1 beyond what it gives the other's (0 to 2)."""
    if x[0].class_id == y[0].class_id:
        return 0.0
    other_x = {h.class_id: h.score for h in x}
    other_y = {h.class_id: h.score for h in y}
    return (x[0].score - other_x.get(y[0].class_id, 0.0)) + \
        (y[0].score - other_y.get(x[0].class_id, 0.0))


def write_disagreements(pairs, a_name, b_name, directory, count):
    """The `count` frames whose results disagree most, as PNGs: the frame twice, side by
    side, each with one model's top-k drawn (the overlay's drawing)."""
    import cv2

    from ..overlay import draw, frame_to_bgr
    ranked = sorted(((disagreement(x.hypotheses, y.hypotheses), i, x, y)
                     for i, (x, y) in enumerate(pairs)), key=lambda r: (-r[0], r[1]))
    ranked = [r for r in ranked if r[0] > 0][:count]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for rank, (score, _, x, y) in enumerate(ranked):
        left = draw(frame_to_bgr(x.frame), a_name, x.hypotheses)
        right = draw(frame_to_bgr(y.frame), b_name, y.hypotheses)
        stamp = x.msg.header.stamp
        name = (f'{rank:02d}_{x.topic.strip("/").replace("/", "_")}_{stamp.sec}.'
                f'{stamp.nanosec:09d}.png')
        cv2.imwrite(str(directory / name), np.hstack([left, right]))
        written.append(directory / name)
    return written


def write_sample_bag(path, storage='mcap', encoding='bgr8', frames=12, rate=10.0,
                     topic='/camera/image_raw', detections_topic=None, size=(640, 480),
                     start_ns=1_700_000_000 * 10**9):
    """A bag of the bundled sample photos, as a camera would record them: `frames` messages
    at `rate` Hz on `topic` (CompressedImage on <topic>/compressed for jpeg/png), frame_id
    = the photo's name; with `detections_topic`, 2x2 mosaics and their tiles as a
    Detection2DArray with the image's header (the sample camera's stand-in detector).
    Returns [(stamp_ns, frame_id or tile names)] of the images written."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from .encode import COMPRESSED as COMPRESSED_ENCODINGS, encode_compressed, encode_raw
    from .sample_camera import load_frames, mosaic
    store = typestore()
    t = store.types
    photos = load_frames('', *size)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    written = []
    with Writer(Path(path), version=9 if storage == 'mcap' else 8,
                storage_plugin=plugin) as writer:
        compressed = encoding in COMPRESSED_ENCODINGS
        msgtype = COMPRESSED if compressed else IMAGE
        conn = writer.add_connection(topic.rstrip('/') + '/compressed' if compressed else topic,
                                     msgtype, typestore=store)
        det_conn = writer.add_connection(detections_topic, DETECTIONS, typestore=store) \
            if detections_topic else None
        for i in range(frames):
            stamp = start_ns + int(i * 1e9 / rate)
            if det_conn is not None:
                image, tiles = mosaic(photos, 2, *size, start=i * 4)
                name = '+'.join(n for n, _ in tiles)
            else:
                name, image = photos[i % len(photos)]
            header = t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](
                sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=name)
            if compressed:
                fmt, data = encode_compressed(image, encoding)
                msg = t[COMPRESSED](header=header, format=fmt,
                                    data=np.frombuffer(data, np.uint8))
            else:
                raw = encode_raw(image, encoding)
                msg = t[IMAGE](header=header, height=raw.height, width=raw.width,
                               encoding=raw.encoding, is_bigendian=0, step=raw.step,
                               data=np.frombuffer(raw.data, np.uint8))
            writer.write(conn, stamp, store.serialize_cdr(msg, msgtype))
            if det_conn is not None:
                dets = [t['vision_msgs/msg/Detection2D'](
                    header=header, results=[], bbox=t['vision_msgs/msg/BoundingBox2D'](
                        center=t['vision_msgs/msg/Pose2D'](
                            position=t['vision_msgs/msg/Point2D'](x=cx, y=cy), theta=0.0),
                        size_x=w, size_y=h), id=tile) for tile, (cx, cy, w, h) in tiles]
                array = t[DETECTIONS](header=header, detections=dets)
                writer.write(det_conn, stamp + 5_000_000,   # a detector answers a bit later
                             store.serialize_cdr(array, DETECTIONS))
            written.append((stamp, name))
    return written


def sample(args):
    written = write_sample_bag(args.output, args.storage, args.encoding, args.frames,
                               args.rate, args.topic,
                               '/detections' if args.detections else None)
    print(f'{args.output}: {len(written)} frames of the sample photos ({args.encoding}, '
          f'{args.storage})' + (', with detections on /detections' if args.detections else ''))
    return 0


@cli('edge-classifier-bag')
def main(argv=None):
    parser = Parser(prog='edge-classifier-bag', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    common = Parser(add_help=False)
    common.add_argument('bag', help='a rosbag2 bag directory (.db3 or .mcap inside)')
    common.add_argument('--topics', nargs='+', metavar='TOPIC',
                        help='image topics to classify (default: every Image and '
                             'CompressedImage topic)')
    common.add_argument('--workers', type=int, help="worker threads (default: the model's)")
    common.add_argument('--backend', choices=BACKENDS, help="override the config's backend")
    common.add_argument('--models-dir', help='where relative model paths resolve')
    one = sub.add_parser('classify', parents=[common], help='classify a bag into a new bag')
    one.add_argument('--output', required=True, help='the bag to write (MCAP; must not exist)')
    one.add_argument('--model', default='efficientnet_lite0',
                     help='config name (config/<name>.yaml) or a YAML file')
    one.add_argument('--detections', metavar='TOPIC',
                     help='a Detection2DArray topic: classify each box of the image with '
                          'the same header instead of the whole frame')
    two = sub.add_parser('compare', parents=[common], help='two models on the same frames')
    two.add_argument('--models', required=True, help='A,B: two config names or YAML files')
    two.add_argument('--output', help='a directory for the frames they disagree on most')
    two.add_argument('--worst', type=int, default=10, help='how many such frames (10)')
    three = sub.add_parser('sample', help='write a bag of the bundled sample photos')
    three.add_argument('output', help='the bag directory to write')
    three.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    three.add_argument('--encoding', default='bgr8', choices=ENCODINGS)
    three.add_argument('--frames', type=int, default=12)
    three.add_argument('--rate', type=float, default=10.0, help='Hz of the recording')
    three.add_argument('--topic', default='/camera/image_raw')
    three.add_argument('--detections', action='store_true',
                       help='2x2 mosaics, their tiles as boxes on /detections')
    args = parser.parse_args(argv)
    if getattr(args, 'workers', None) is not None and args.workers < 1:
        parser.error('--workers: at least 1')
    try:
        return {'classify': classify, 'compare': compare, 'sample': sample}[args.command](args)
    except KeyboardInterrupt:   # Ctrl-C: what was written is a complete, shorter bag
        if args.command == 'classify':
            print(f'{args.output} holds the frames classified so far', file=sys.stderr)
        raise


if __name__ == '__main__':
    sys.exit(main())
