"""The pool's rules one part at a time (pool_parts.py), no threads: Order (in order, never back in
time, one publisher), Slots (newest wins, sources take turns), Books (every frame settled
once, the buffer given back), IdleWorkers (the warm one first), Buffers, RateBudget (at
most max_rate frames a second per source)."""
import random
from dataclasses import fields

from edge_classifier.pool import _Job
from edge_classifier.pool_parts import (Books, Buffers, IdleWorkers, Order, RateBudget, Slots,
                                        SourceStats)


def job(source, seq):
    return _Job(source, seq, make_frame=None, meta=seq, t_in=0.0)


# ---- Order ----------------------------------------------------------------------------------
def test_a_result_waits_while_an_older_frame_is_held_then_both_leave_in_order():
    order = Order()
    order.hold(1)
    order.hold(2)
    assert order.done(2, 'r2') == [] and list(order.outbox) == []   # 1 is still held
    order.done(1, 'r1')
    assert list(order.outbox) == ['r1', 'r2'] and order.released == 2


def test_a_frame_settled_on_the_way_lets_the_ones_behind_it_out():
    order = Order()
    for seq in (1, 2, 3):
        order.hold(seq)
    order.done(3, 'r3')
    order.done(2, 'r2')
    assert list(order.outbox) == []
    order.done(1)          # malformed, or a failed inference: no item
    assert list(order.outbox) == ['r2', 'r3']


def test_an_item_older_than_one_let_out_never_leaves():
    order = Order()
    order.hold(5)
    order.done(5, 'r5')
    assert order.done(4, 'r4') == ['r4']   # never held, older than r5: refused
    assert list(order.outbox) == ['r5']


def test_one_publisher_at_a_time_until_the_outbox_is_empty():
    order = Order()
    assert not order.claim()               # nothing to publish
    order.hold(1)
    order.done(1, 'r1')
    assert order.claim() and not order.claim()   # the second caller leaves it to the first
    order.hold(2)
    order.done(2, 'r2')                    # arrives while the first publishes
    assert order.next() == 'r1' and order.next() == 'r2'
    assert order.next() is None and not order.publishing
    order.hold(3)
    order.done(3, 'r3')
    assert order.claim()                   # a new turn


# ---- Slots ----------------------------------------------------------------------------------
def test_newest_wins_per_source():
    slots = Slots()
    cam = slots.source('cam')
    assert slots.put(job(cam, 1)) is None
    first = cam.raw
    assert slots.put(job(cam, 2)) is first           # replaced: to count as dropped
    assert slots.pending() == 1 and slots.take().seq == 2 and slots.take() is None


def test_sources_take_turns_served_longest_ago_first():
    """Each round both cameras deliver (in either order) and one frame is taken: they
    alternate, whichever camera's frame came first (the oldest frame first would always
    serve the same camera when it delivers first)."""
    slots = Slots()
    a, b = slots.source('a'), slots.source('b')
    taken, seq = [], 0
    for round_ in range(8):
        for source in ((a, b) if round_ % 2 else (b, a)) if round_ > 1 else (a, b):
            seq += 1
            slots.put(job(source, seq))
        taken.append(slots.take().source.name)
    assert taken == ['a', 'b'] * 4, taken


def test_a_converted_frame_goes_before_the_raw_one_and_a_late_conversion_is_dropped():
    slots = Slots()
    cam = slots.source('cam')
    slots.put(job(cam, 1))
    converting = slots.next_to_convert()
    assert converting.seq == 1 and cam.raw is None
    slots.put(job(cam, 2))
    assert slots.converted(converting) == []        # waits, converted (older than raw)
    assert slots.take().seq == 1 and slots.take().seq == 2
    slots.put(job(cam, 3))
    late = slots.next_to_convert()
    slots.put(job(cam, 4))
    assert slots.take().seq == 4                     # a worker took a newer frame meanwhile
    assert slots.converted(late) == [late]           # so the late one is dropped


def test_clear_empties_every_slot():
    slots = Slots()
    a, b = slots.source('a'), slots.source('b')
    slots.put(job(a, 1))
    slots.put(job(b, 2))
    converting = slots.next_to_convert()
    slots.converted(converting)
    slots.put(job(a, 3))
    assert sorted(j.seq for j in slots.clear()) == [1, 2, 3] and slots.pending() == 0


# ---- Books, Buffers, IdleWorkers ------------------------------------------------------------
def test_a_frame_is_settled_once_and_gives_its_buffer_back():
    made = []
    buffers = Buffers(lambda: made.append(object()) or made[-1])
    books = Books(buffers)
    slots = Slots()
    cam = slots.source('cam')
    frame = job(cam, 1)
    books.receive(cam)
    frame.buffer = buffers.get()
    assert cam.stats.in_flight == 1 and cam.stats.balanced()
    assert books.settle(frame, 'errors', RuntimeError('BPU timeout'))
    assert not books.settle(frame, 'classified')     # once
    assert (cam.stats.errors, cam.stats.classified, cam.stats.in_flight) == (1, 0, 0)
    assert cam.stats.last_error == 'BPU timeout' and books.consecutive_errors == 1
    assert buffers.get() is made[0] and len(made) == 1   # reused, not made again
    other = job(cam, 2)
    books.receive(cam)
    books.settle(other, 'classified')
    assert books.consecutive_errors == 0 and cam.stats.balanced()


class Wake:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def notify(self):
        self.log.append(self.name)


def test_the_worker_that_went_idle_last_is_woken_first():
    woken, idle = [], IdleWorkers()
    first, second = Wake('first', woken), Wake('second', woken)
    idle.park(first)
    idle.park(second)
    idle.wake_warmest()
    idle.leave(second)
    idle.wake_warmest()
    assert woken == ['second', 'first'] and len(idle) == 1


# ---- RateBudget -----------------------------------------------------------------------------
def admitted(times, rate, budget=None):
    budget = budget or RateBudget()
    return [t for t in times if budget.admit(t, rate)]


def test_no_budget_takes_every_frame():
    times = [i / 30 for i in range(90)]
    assert admitted(times, 0.0) == times


def test_a_30_hz_camera_at_5_hz_gives_every_sixth_frame_5_a_second():
    times = [i / 30 for i in range(300)]                       # 10 s
    kept = admitted(times, 5.0)
    assert len(kept) == 50
    assert all(abs((b - a) - 0.2) < 1e-9 for a, b in zip(kept, kept[1:]))


def test_a_jittering_camera_still_gives_the_rate_on_average():
    rng = random.Random(3)
    times = sorted(i / 30 + rng.uniform(-0.004, 0.004) for i in range(900))   # 30 s
    kept = admitted(times, 10.0)
    assert 295 <= len(kept) <= 305
    assert min(b - a for a, b in zip(kept, kept[1:])) >= 0.1 * (1 - RateBudget.EARLY) - 0.01


def test_after_a_pause_the_budget_starts_again_without_a_burst():
    times = [i / 30 for i in range(30)] + [3.0 + i / 30 for i in range(30)]
    kept = admitted(times, 2.0)
    after = [t for t in kept if t >= 3.0]
    assert after[0] == 3.0 and all(b - a >= 0.45 for a, b in zip(after, after[1:]))


def test_the_rate_changes_at_run_time():
    budget = RateBudget()
    first = admitted([i / 30 for i in range(150)], 5.0, budget)          # 5 s at 5 Hz
    second = admitted([5 + i / 30 for i in range(150)], 10.0, budget)    # 5 s at 10 Hz
    unlimited = admitted([10 + i / 30 for i in range(30)], 0.0, budget)
    assert len(first) == 25 and 49 <= len(second) <= 50 and len(unlimited) == 30


def test_books_count_a_throttled_frame_as_its_own_outcome():
    slots, books = Slots(), Books(Buffers(lambda: None))
    source = slots.source('cam')
    books.receive(source)
    books.receive(source)
    books.settle(job(source, 1), 'throttled')
    assert source.stats.throttled == 1 and source.stats.in_flight == 1
    assert source.stats.balanced()


# ---- what the parts promise at their edges -------------------------------------------------
def test_the_books_balance_only_when_every_outcome_is_counted():
    stats = SourceStats(received=21, classified=1, dropped=2, malformed=3, errors=4,
                        throttled=5, in_flight=6)
    assert stats.balanced()
    for outcome in ('classified', 'dropped', 'malformed', 'errors', 'throttled', 'in_flight'):
        off = SourceStats(**{**vars(stats), outcome: getattr(stats, outcome) + 1})
        assert not off.balanced(), outcome


def test_totals_add_every_count_and_keep_their_own_last_error():
    total = SourceStats(last_error='mine')
    counts = {f.name: i + 1 for i, f in enumerate(fields(SourceStats)) if f.name != 'last_error'}
    total.add(SourceStats(**counts, last_error='theirs'))
    total.add(SourceStats(**counts))
    assert {k: getattr(total, k) for k in counts} == {k: 2 * v for k, v in counts.items()}
    assert total.last_error == 'mine'


def test_a_budget_below_one_frame_a_second_and_one_switched_on_later():
    assert admitted([i / 30 for i in range(120)], 0.5) == [0.0, 1.9, 3.9]   # 4 s at 0.5 Hz
    budget = RateBudget()
    assert len(admitted([i / 30 for i in range(30)], 0.0, budget)) == 30  # off, then on
    assert len(admitted([1 + i / 30 for i in range(30)], 2.0, budget)) == 2


def test_the_budgets_edges_a_twentieth_early_is_on_time_a_whole_period_late_starts_again():
    budget = RateBudget()
    assert budget.admit(0.0, 4.0) and budget.due == 0.25
    assert budget.admit(0.25 - RateBudget.EARLY * 0.25, 4.0)   # early by exactly the margin
    assert budget.due == 0.5
    assert budget.admit(0.75, 4.0) and budget.due == 1.0      # a whole period late: from now
    assert not budget.admit(0.76, 4.0)


def test_an_order_lets_out_any_first_frame_and_each_source_has_its_own():
    order = Order()
    order.hold(0)
    assert order.done(0, 'r0') == [] and list(order.outbox) == ['r0']
    slots = Slots()
    a = slots.source('a')
    assert slots.source('a') is a and slots.source('b') is not a
    a.order.hold(1)
    assert slots.source('b').order.held == set() and slots.source('b').budget.due is None


def test_a_taken_converted_frame_leaves_nothing_waiting():
    slots = Slots()
    cam = slots.source('cam')
    assert not slots.waiting()
    slots.put(job(cam, 1))
    assert slots.waiting()
    slots.converted(slots.next_to_convert())
    assert slots.pending() == 1 and slots.take().seq == 1
    assert slots.pending() == 0 and not slots.waiting() and cam.ready is None
    slots.put(job(cam, 2))
    slots.converted(slots.next_to_convert())
    slots.put(job(cam, 3))
    assert slots.pending() == 2                                    # one raw, one converted


def test_raw_waiting_is_a_frame_not_yet_converted_of_any_source():
    slots = Slots()
    a, b = slots.source('a'), slots.source('b')
    assert not slots.raw_waiting()
    slots.put(job(b, 1))
    assert slots.raw_waiting()
    slots.converted(slots.next_to_convert())
    assert slots.waiting() and not slots.raw_waiting()      # converted: the workers' work
    slots.put(job(a, 2))
    assert slots.raw_waiting()
    slots.take()
    slots.take()
    assert not slots.raw_waiting() and not slots.waiting()


def test_a_second_conversion_replaces_the_first_which_counts_dropped():
    slots = Slots()
    cam = slots.source('cam')
    slots.put(job(cam, 1))
    first = slots.next_to_convert()
    assert slots.converted(first) == []
    slots.put(job(cam, 2))
    second = slots.next_to_convert()
    assert slots.converted(second) == [first] and cam.ready is second


def test_the_converter_serves_sources_with_nothing_converted_first():
    slots = Slots()
    a, b = slots.source('a'), slots.source('b')
    slots.put(job(a, 1))
    slots.put(job(b, 2))
    assert slots.take().source is a and slots.take().source is b   # a served longer ago
    slots.put(job(a, 3))
    slots.converted(slots.next_to_convert())        # a has a frame converted ahead
    slots.put(job(a, 5))
    slots.put(job(b, 6))
    assert slots.next_to_convert().source is b      # not a (its turn first, but one is ready)


def test_failed_inferences_in_a_row_are_a_streak_that_a_result_ends():
    books, cam = Books(Buffers(lambda: None)), Slots().source('cam')
    for seq in (1, 2, 3):
        books.receive(cam)
        books.settle(job(cam, seq), 'errors')
    assert books.consecutive_errors == 3
    books.receive(cam)
    books.settle(job(cam, 4), 'dropped')
    assert books.consecutive_errors == 3            # a dropped frame says nothing
    held = job(cam, 5)
    held.buffer = bytearray(4)
    books.receive(cam)
    books.settle(held, 'classified')
    assert books.consecutive_errors == 0 and held.buffer is None
