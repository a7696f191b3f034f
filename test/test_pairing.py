"""Images meet their detections by header (pairing.py, ROS-free): either may come first,
never a pair back in time, bounded waiting, timeouts, two sources apart, and the books
balance at every step."""
import threading

import pytest

from edge_classifier.pairing import Pairing


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def key(t, frame='cam'):
    return (t, 0, frame)


@pytest.fixture
def setup():
    clock, pairs = Clock(), []
    pairing = Pairing(0.5, lambda source, image, det: pairs.append((source, image, det)),
                      capacity=4, clock=clock)
    return pairing, pairs, clock


def books(pairing):
    stats = pairing.stats()
    assert all(s.balanced() for s in stats.values()), stats
    return stats


def test_detections_after_their_image_and_before_it(setup):
    pairing, pairs, _ = setup
    pairing.image('a', key(1), 'img1')
    assert pairs == []
    pairing.detections('a', key(1), 'det1')
    pairing.detections('a', key(2), 'det2')
    pairing.image('a', key(2), 'img2')
    assert pairs == [('a', 'img1', 'det1'), ('a', 'img2', 'det2')]
    s = books(pairing)['a']
    assert (s.images, s.detections, s.paired, s.images_waiting, s.detections_waiting) == \
        (2, 2, 2, 0, 0)


def test_frame_id_is_part_of_the_match(setup):
    pairing, pairs, _ = setup
    pairing.image('a', key(1, 'left'), 'img')
    pairing.detections('a', key(1, 'right'), 'det')
    assert pairs == []
    assert books(pairing)['a'].images_waiting == 1


def test_never_and_a_header_that_matches_nothing_time_out_counted(setup):
    pairing, pairs, clock = setup
    pairing.image('a', key(1), 'img')            # its detections never come
    pairing.detections('a', key(7), 'det')       # a header that matches nothing
    clock.now += 0.4
    pairing.expire()
    assert books(pairing)['a'].images_waiting == 1
    clock.now += 0.2
    pairing.expire()
    s = books(pairing)['a']
    assert pairs == [] and s.images_unmatched == 1 and s.detections_orphaned == 1
    assert s.images_waiting == s.detections_waiting == 0


def test_a_pair_drops_older_waiting_entries_and_later_stale_arrivals(setup):
    pairing, pairs, _ = setup
    for t in (1, 2, 3):
        pairing.image('a', key(t), f'img{t}')
    pairing.detections('a', key(2), 'det2')       # the detector skipped frame 1
    assert pairs == [('a', 'img2', 'det2')]
    s = books(pairing)['a']
    assert s.images_unmatched == 1 and s.images_waiting == 1  # img3 still waits
    pairing.detections('a', key(1), 'det1')       # late: would go back in time
    pairing.image('a', key(2), 'img2-again')
    s = books(pairing)['a']
    assert s.detections_orphaned == 1 and s.images_unmatched == 2
    assert len(pairs) == 1


def test_the_cache_is_bounded_oldest_out(setup):
    pairing, pairs, _ = setup
    for t in range(1, 11):                        # a detector that never answers
        pairing.image('a', key(t), t)
    s = books(pairing)['a']
    assert s.images_waiting == 4 and s.images_unmatched == 6
    pairing.detections('a', key(10), 'det')
    assert pairs == [('a', 10, 'det')]
    assert books(pairing)['a'].images_waiting == 0


def test_the_same_header_twice_keeps_the_newer(setup):
    pairing, pairs, _ = setup
    pairing.image('a', key(1), 'first')
    pairing.image('a', key(1), 'second')
    pairing.detections('a', key(1), 'det')
    assert pairs == [('a', 'second', 'det')]
    assert books(pairing)['a'].images_unmatched == 1


def test_two_cameras_with_their_own_detectors_do_not_mix(setup):
    pairing, pairs, _ = setup
    pairing.image('front', key(1), 'front-img')
    pairing.detections('rear', key(1), 'rear-det')   # same header, other camera
    assert pairs == []
    pairing.image('rear', key(1), 'rear-img')
    pairing.detections('front', key(1), 'front-det')
    assert sorted(pairs) == [('front', 'front-img', 'front-det'),
                             ('rear', 'rear-img', 'rear-det')]


def test_clear_drops_what_waits_counted(setup):
    pairing, _, _ = setup
    pairing.image('a', key(1), 'img')
    pairing.detections('a', key(2), 'det')
    pairing.clear()
    s = books(pairing)['a']
    assert (s.images_unmatched, s.detections_orphaned, s.images_waiting) == (1, 1, 0)


def test_books_balance_under_concurrent_arrivals():
    pairs = []
    pairing = Pairing(0.05, lambda s, i, d: pairs.append((s, i, d)), capacity=8)
    errors = []

    def camera(source):
        for t in range(2000):
            pairing.image(source, key(t), t)

    def detector(source):
        for t in range(0, 2000, 3):
            pairing.detections(source, key(t), t)
            try:
                assert all(s.balanced() for s in pairing.stats().values())
            except AssertionError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=f, args=(src,)) for src in ('a', 'b')
               for f in (camera, detector)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for source in ('a', 'b'):
        stamps = [i for s, i, d in pairs if s == source]
        assert stamps == sorted(set(stamps))               # never back in time
        assert all(i == d for s, i, d in pairs if s == source)


def test_a_timeout_must_be_positive():
    with pytest.raises(ValueError, match='positive'):
        Pairing(0, lambda *a: None)


def test_after_a_pair_nothing_of_that_stamp_or_older_waits_or_is_taken(setup):
    """Other frame_ids of the pair's stamp could never pair now: dropped at once, whether
    they wait already or arrive later."""
    pairing, pairs, _ = setup
    pairing.image('a', key(5, 'left'), 'left5')
    pairing.detections('a', key(3, 'right'), 'det3')
    pairing.detections('a', key(5, 'right'), 'det5')
    pairing.image('a', key(5, 'right'), 'right5')
    assert pairs == [('a', 'right5', 'det5')]
    s = books(pairing)['a']
    assert (s.images_waiting, s.detections_waiting) == (0, 0)
    assert (s.images_unmatched, s.detections_orphaned) == (1, 1)
    pairing.image('a', key(5, 'other'), 'late')          # same stamp, another frame: stale
    pairing.detections('a', key(5, 'other'), 'late')
    s = books(pairing)['a']
    assert (s.images_unmatched, s.detections_orphaned, len(pairs)) == (2, 2, 1)


def test_a_full_cache_drops_what_arrived_first_not_the_lowest_stamp():
    clock, pairs = Clock(), []
    pairing = Pairing(0.5, lambda s, i, d: pairs.append(i), capacity=2, clock=clock)
    for t, payload in ((5, 'b'), (3, 'z'), (7, 'a')):   # arrival order differs from stamps
        clock.now += 0.01
        pairing.image('a', key(t), payload)
    pairing.detections('a', key(3), 'det')               # 3 still waits: 5 was dropped
    assert pairs == ['z']


def test_a_cache_of_one_holds_one():
    pairing = Pairing(0.5, lambda *a: None, capacity=1)
    pairing.image('a', key(1), 1)
    pairing.image('a', key(2), 2)
    s = books(pairing)['a']
    assert (s.images_waiting, s.images_unmatched) == (1, 1)


def test_the_timeout_is_exclusive(setup):
    pairing, _, clock = setup
    pairing.image('a', key(1), 'img')
    clock.now += 0.5                                      # exactly the timeout: still waits
    pairing.expire()
    assert books(pairing)['a'].images_waiting == 1
    clock.now += 1e-6
    pairing.expire()
    assert books(pairing)['a'].images_unmatched == 1


def test_balanced_needs_both_sides():
    from edge_classifier.pairing import PairingStats
    good = PairingStats(images=2, detections=2, paired=1, images_waiting=1,
                        detections_orphaned=1)
    assert good.balanced()
    assert not PairingStats(images=2, detections=3, paired=1, images_waiting=1).balanced()
    assert not PairingStats(images=3, detections=2, paired=1, detections_waiting=1).balanced()


def test_age_is_counted_between_arrivals_not_to_when_the_node_read_a_message(setup):
    """A large Detection2DArray reached the node 0.1 s after its image but took the node
    0.7 s to read: it arrived within the timeout and pairs; one that arrived 0.6 s after
    its image does not."""
    pairing, pairs, clock = setup
    pairing.image('a', key(1), 'img1')
    received = clock.now + 0.1
    clock.now += 0.8                         # the node has read it only now
    pairing.detections('a', key(1), 'det1', arrived=received)
    assert pairs == [('a', 'img1', 'det1')]
    pairing.image('a', key(2), 'img2')
    received = clock.now + 0.6
    clock.now += 0.7
    pairing.detections('a', key(2), 'det2', arrived=received)
    assert pairs == [('a', 'img1', 'det1')]
    s = books(pairing)['a']
    assert (s.paired, s.images_unmatched, s.detections_waiting) == (1, 1, 1)
    pairing.image('a', key(3), 'img3', arrived=clock.now - 0.2)   # images too
    clock.now += 0.35
    pairing.expire()
    assert books(pairing)['a'].images_unmatched == 2
