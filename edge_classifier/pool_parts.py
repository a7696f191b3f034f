"""The worker pool's rules, one small part each, pure (no threads, no locks of their own:
the pool calls them with its one lock held), so that each rule has one home and its unit
tests (test/test_pool_parts.py) need no threads:

    RateBudget   at most max_rate frames a second per source (the rest: throttled)
    Slots        newest wins (one frame waits per source, one converted ahead) and sources
                 take turns (the one served longest ago first)
    Order        in order, never back in time, one publisher at a time per source
    IdleWorkers  the warm worker first (a LIFO)
    Buffers      NV12 buffers reused for frames converted ahead
    Books        every frame counted, settled once: received = classified + dropped +
                 malformed + errors + throttled + in_flight

pool.py puts them to work: WorkerPool's threads, tasks and stats.
"""
import collections
from dataclasses import dataclass, fields

OUTCOMES = ('classified', 'dropped', 'malformed', 'errors', 'throttled')


@dataclass
class SourceStats:
    """One source's books: received = classified + dropped + malformed + errors +
    throttled + in_flight."""
    received: int = 0
    classified: int = 0
    dropped: int = 0
    malformed: int = 0
    errors: int = 0
    throttled: int = 0              # left out by the rate budget (max_rate), never decoded
    in_flight: int = 0
    boxes: int = 0                  # boxes classified (frames with boxes; not in the sum)
    boxes_skipped: int = 0          # boxes left out (invalid, outside, small, over the limit)
    last_error: str = ''

    def balanced(self):
        return self.received == (self.classified + self.dropped + self.malformed +
                                 self.errors + self.throttled + self.in_flight)

    def add(self, other):
        for f in fields(self):
            if f.name != 'last_error':
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class RateBudget:
    """At most `rate` frames a second from one source (0: every frame). Pure.

    A frame is taken in once its due time has come; each one taken moves the due time on
    by one period from the last due time (not from the frame's arrival), so a 30 Hz
    camera at 5 Hz gives exactly every sixth frame, 5 a second, not 30/7. A frame up to a
    twentieth of a period early counts as on time (a camera's jitter); after a pause longer
    than a period the budget starts again from the next frame (no burst to catch up)."""
    EARLY = 0.05

    def __init__(self):
        self.due = None

    def admit(self, now, rate):
        if rate <= 0:
            self.due = None
            return True
        period = 1.0 / rate
        if self.due is not None and now < self.due - self.EARLY * period:
            return False
        if self.due is None or now - self.due >= period:
            self.due = now
        self.due += period
        return True


class Order:
    """In order, never back in time, for one source. Pure: the pool's lock guards it.

    hold(seq) when a worker takes a frame; done(seq, item) when it lets go of it (item None:
    the frame was settled on the way). An item leaves (into `outbox`) once no older frame is
    held; items leave in frame order. One thread at a time publishes the outbox: the one
    whose claim() says so, until next() returns None."""

    def __init__(self):
        self.held = set()
        self.finished = {}                  # seq -> item, done behind an older held frame
        self.outbox = collections.deque()   # ready to publish, in order
        self.released = 0                   # the newest seq let out
        self.publishing = False

    def hold(self, seq):
        self.held.add(seq)

    def done(self, seq, item=None):
        """Frame `seq` let go; returns the items that may never leave (older than one let
        out already: the rule's guard; the slots hand out frames in order, so none)."""
        self.held.discard(seq)
        if item is not None:
            if seq < self.released:
                return [item]
            self.finished[seq] = item
        while self.finished:
            first = min(self.finished)
            if any(held < first for held in self.held):
                break
            self.outbox.append(self.finished.pop(first))
            self.released = first
        return []

    def claim(self):
        """True: the caller is now the source's publisher (something waits, nobody else
        publishes it)."""
        if self.publishing or not self.outbox:
            return False
        self.publishing = True
        return True

    def next(self):
        """The publisher's next item; None ends its turn."""
        if self.outbox:
            return self.outbox.popleft()
        self.publishing = False
        return None


class _Source:
    """One source: its waiting frames and turn (Slots), its order and books."""

    def __init__(self, name):
        self.name = name
        self.stats = SourceStats()
        self.raw = None          # the newest frame, not converted
        self.ready = None        # converted ahead; older than raw when both wait
        self.served = 0          # the turn at which a worker last took one of its frames
        self.taken = 0           # seq of the newest frame a worker took
        self.order = Order()
        self.budget = RateBudget()


def whose_turn(sources, frame, first=lambda source: False):
    """Sources take turns: among those with a frame waiting (`frame(source)`), the one
    served longest ago, then the one whose frame is oldest; `first(source)` True sorts a
    source behind the others."""
    best = None
    for source in sources:
        job = frame(source)
        if job is not None:
            key = (first(source), source.served, job.seq)
            if best is None or key < best[0]:
                best = (key, source)
    return None if best is None else best[1]


def _waiting(source):
    return source.ready or source.raw


class Slots:
    """Newest wins, sources take turns: per source one raw frame waits (and one converted
    ahead); a worker gets the frame of the source served longest ago, the older first."""

    def __init__(self):
        self.sources = {}         # name -> _Source, in order of first frame
        self._turn = 0

    def source(self, name):
        state = self.sources.get(name)
        if state is None:
            state = self.sources[name] = _Source(name)
        return state

    def put(self, job):
        """`job` waits; returns the frame it replaced (to count as dropped)."""
        replaced, job.source.raw = job.source.raw, job
        return replaced

    def waiting(self):
        return any(_waiting(source) is not None for source in self.sources.values())

    def raw_waiting(self):
        """A frame waits unconverted (work for the converter)."""
        return any(source.raw is not None for source in self.sources.values())

    def take(self):
        """The next frame for a worker (None: none waits)."""
        source = whose_turn(self.sources.values(), _waiting)
        if source is None:
            return None
        self._turn += 1
        source.served = self._turn
        job = _waiting(source)
        if job is source.ready:
            source.ready = None
        else:
            source.raw = None
        source.taken = job.seq
        return job

    def next_to_convert(self):
        """Out of its slot, for the converter: the raw frame whose turn comes next (sources
        with nothing converted yet first); None when none waits."""
        source = whose_turn(self.sources.values(), lambda s: s.raw,
                            first=lambda s: s.ready is not None)
        if source is None:
            return None
        job, source.raw = source.raw, None
        return job

    def converted(self, job):
        """The converter is done with `job`: it waits, converted. Returns the frames to
        count as dropped: `job` itself when a worker took a newer frame of its source
        meanwhile, else an older converted frame nobody took."""
        source = job.source
        if job.seq < source.taken:
            return [job]
        replaced, source.ready = source.ready, job
        return [] if replaced is None else [replaced]

    def clear(self):
        """Every waiting frame, out of the slots."""
        jobs = []
        for source in self.sources.values():
            jobs += [job for job in (source.raw, source.ready) if job is not None]
            source.raw = source.ready = None
        return jobs

    def pending(self):
        return sum((s.raw is not None) + (s.ready is not None) for s in self.sources.values())


class IdleWorkers:
    """Warm worker first: idle workers' conditions, the one that went idle last on top (its
    thread, caches and the runtime's state for it are warm)."""

    def __init__(self):
        self._stack = []

    def park(self, wake):
        self._stack.append(wake)

    def leave(self, wake):
        self._stack.remove(wake)

    def wake_warmest(self):
        if self._stack:
            self._stack[-1].notify()

    def wake_all(self):
        for wake in self._stack:
            wake.notify()

    def __len__(self):
        return len(self._stack)


class Buffers:
    """NV12 buffers for frames converted ahead, reused: a frame holds one from conversion
    until it is settled."""

    def __init__(self, make):
        self._free = []
        self._make = make

    def get(self):
        return self._free.pop() if self._free else self._make()

    def put(self, buffer):
        self._free.append(buffer)


class Books:
    """Every frame counted: per source received = classified + dropped + malformed +
    errors + in_flight at every moment; a frame is settled once (and gives back the buffer
    it holds). Also the streak of failed inferences, which a delivered result ends."""

    def __init__(self, buffers):
        self.buffers = buffers
        self.consecutive_errors = 0

    @staticmethod
    def receive(source):
        source.stats.received += 1
        source.stats.in_flight += 1

    def settle(self, job, outcome, exc=None):
        """`job`'s one outcome; False when it was settled already."""
        if job.settled:
            return False
        job.settled = True
        stats = job.source.stats
        stats.in_flight -= 1
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        if exc is not None:
            stats.last_error = str(exc)
        if outcome == 'errors':
            self.consecutive_errors += 1
        elif outcome == 'classified':
            self.consecutive_errors = 0
        if job.buffer is not None:
            self.buffers.put(job.buffer)
            job.buffer = None
        return True
