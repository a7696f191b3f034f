"""Images meet their detections (ROS-free): the two-stage pipeline's pairing.

Every ROS detector copies its image's header into its Detection2DArray, so a detection
array belongs to the image with the same stamp and frame_id: an exact match, a dictionary
per source. Whichever comes first waits (a small bounded cache per source, images and
detections each) for at most `timeout` seconds:

    pairing = Pairing(timeout=0.5, on_pair=lambda source, image, detections: ...)
    pairing.image(source, key, image)            # key: (sec, nanosec, frame_id)
    pairing.detections(source, key, detections, arrived=t)   # t: when it was received
    pairing.expire()                             # on a timer: what waited too long goes

Rules, per source:
  - a pair is handed on at once (on_pair runs under the pairing's lock, so pairs of a source
    are handed on in the order they were made);
  - never back in time: once a pair of stamp t is made, images and detections stamped t
    or earlier that still wait are dropped (their partner never comes: a detector answers
    in order), and later arrivals stamped t or earlier are dropped on arrival;
  - a full cache drops its oldest entry; an entry older than `timeout` is dropped.
    Age is counted between arrivals: an entry pairs with a partner that arrived within
    `timeout` of it. `arrived` (default: now) is when the message reached the node, before
    the node converted it: a 10,000-box array takes the node 0.1-0.5 s to read, its own
    time, not the detector's lateness.

Books per source (PairingStats): images = paired + images_unmatched + images_waiting, and
detections = paired + detections_orphaned + detections_waiting, at every moment.
"""
import threading
import time
from dataclasses import dataclass

DEFAULT_CAPACITY = 8  # per source, images and detections each


def header_key(header):
    """What pairs an image with its detections: (sec, nanosec, frame_id)."""
    return (header.stamp.sec, header.stamp.nanosec, header.frame_id)


@dataclass
class PairingStats:
    images: int = 0
    detections: int = 0
    paired: int = 0
    images_unmatched: int = 0       # their detections never came (timeout, evicted, stale)
    detections_orphaned: int = 0    # their image never came or was gone
    images_waiting: int = 0         # (filled in by Pairing.stats() from the caches)
    detections_waiting: int = 0

    def balanced(self):
        return (self.images == self.paired + self.images_unmatched + self.images_waiting and
                self.detections == self.paired + self.detections_orphaned +
                self.detections_waiting)


class _Side:
    """One kind of waiting entry (images or detections) of one source: key -> (t, payload)."""

    def __init__(self):
        self.waiting = {}

    def pop_older(self, stamp):
        """Remove the entries stamped `stamp` or earlier (whatever their frame_id: they could
        never pair now, their partners would come too late): how many."""
        old = [k for k in self.waiting if k[:2] <= stamp]
        for k in old:
            del self.waiting[k]
        return len(old)


class _SourcePairing:
    def __init__(self):
        self.stats = PairingStats()
        self.images = _Side()
        self.detections = _Side()
        self.last_paired = None     # (sec, nanosec) of the newest pair


class Pairing:
    def __init__(self, timeout, on_pair, capacity=DEFAULT_CAPACITY, clock=time.monotonic):
        if timeout <= 0:
            raise ValueError(f'timeout must be positive, got {timeout!r}')
        self.timeout = timeout
        self.on_pair = on_pair
        self.capacity = max(1, int(capacity))
        self.clock = clock
        self._lock = threading.Lock()
        self._sources = {}

    def image(self, source, key, payload, arrived=None):
        self._arrive(source, key, payload, True, arrived)

    def detections(self, source, key, payload, arrived=None):
        self._arrive(source, key, payload, False, arrived)

    def _arrive(self, source, key, payload, image, arrived):
        now = self.clock() if arrived is None else arrived
        with self._lock:
            state = self._sources.get(source)
            if state is None:
                state = self._sources[source] = _SourcePairing()
            s = state.stats
            mine, other = ((state.images, state.detections) if image
                           else (state.detections, state.images))
            if image:
                s.images += 1
            else:
                s.detections += 1
            self._expire_locked(state, now)
            stamp = key[:2]
            if state.last_paired is not None and stamp <= state.last_paired:
                self._count_dropped(s, image, 1)  # older than a pair already made
                return
            partner = other.waiting.pop(key, None)
            if partner is None:
                if key in mine.waiting:  # the same header again: the newer one waits
                    self._count_dropped(s, image, 1)
                elif len(mine.waiting) >= self.capacity:
                    oldest = min(mine.waiting, key=lambda k: mine.waiting[k][0])
                    del mine.waiting[oldest]
                    self._count_dropped(s, image, 1)
                mine.waiting[key] = (now, payload)
                return
            s.paired += 1
            state.last_paired = stamp
            self._count_dropped(s, True, state.images.pop_older(stamp))
            self._count_dropped(s, False, state.detections.pop_older(stamp))
            img, det = (payload, partner[1]) if image else (partner[1], payload)
            self.on_pair(source, img, det)

    def expire(self):
        """Drop (count) what waited longer than the timeout."""
        now = self.clock()
        with self._lock:
            for state in self._sources.values():
                self._expire_locked(state, now)

    def _expire_locked(self, state, now):
        for side, image in ((state.images, True), (state.detections, False)):
            old = [k for k, (t, _) in side.waiting.items() if now - t > self.timeout]
            for k in old:
                del side.waiting[k]
            self._count_dropped(state.stats, image, len(old))

    @staticmethod
    def _count_dropped(stats, image, n):
        if image:
            stats.images_unmatched += n
        else:
            stats.detections_orphaned += n

    def clear(self):
        """Forget everything waiting (counted dropped): on deactivate."""
        with self._lock:
            for state in self._sources.values():
                self._count_dropped(state.stats, True, len(state.images.waiting))
                self._count_dropped(state.stats, False, len(state.detections.waiting))
                state.images.waiting.clear()
                state.detections.waiting.clear()

    def stats(self):
        """source -> a copy of its PairingStats (waiting: what the caches hold now)."""
        with self._lock:
            return {name: PairingStats(**dict(
                vars(state.stats), images_waiting=len(state.images.waiting),
                detections_waiting=len(state.detections.waiting)))
                for name, state in self._sources.items()}
