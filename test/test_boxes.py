"""A detector's boxes -> crops (boxes.py) and through the Classifier (ROS-free): clipping,
expanding, squaring, the skip reasons and their counts, the bad-box corpus, and a box over
the whole image giving the whole frame's NV12 bytes and top-k in every encoding."""
import numpy as np
import pytest

from edge_classifier.boxes import BoxOptions, as_boxes, crop, plan_boxes
from edge_classifier.tools.encode import RAW_ENCODINGS, encode_raw
from edge_classifier.frames import image_to_frame

W, H = 640, 480


def test_a_box_inside_is_cut_where_it_is():
    plan = plan_boxes([(100, 50, 40, 20)], W, H)
    assert plan.rects == [(80, 40, 40, 20)] and plan.skipped == {}


def test_fractional_edges_grow_outwards_and_boxes_clip_to_the_image():
    plan = plan_boxes([(100.5, 50.5, 10.2, 10.2), (630, 470, 40, 40), (0, 0, 20, 30)], W, H)
    assert plan.rects == [(95, 45, 11, 11), (610, 450, 30, 30), (0, 0, 10, 15)]


def test_expand_and_square_act_around_the_centre_before_clipping():
    assert plan_boxes([(100, 100, 40, 20)], W, H, BoxOptions(expand=1.5)).rects == \
        [(70, 85, 60, 30)]
    assert plan_boxes([(100, 100, 40, 20)], W, H, BoxOptions(square=True)).rects == \
        [(80, 80, 40, 40)]
    assert plan_boxes([(100, 100, 40, 20)], W, H, BoxOptions(expand=2, square=True)).rects \
        == [(60, 60, 80, 80)]
    # squared at the border, then clipped
    assert plan_boxes([(5, 100, 10, 40)], W, H, BoxOptions(square=True)).rects == \
        [(0, 80, 25, 40)]


def test_align_two_puts_every_edge_on_even_pixels_growing_outwards():
    plan = plan_boxes([(100.5, 51, 11, 13), (639, 479, 6, 6)], W, H, BoxOptions(min_size=2),
                      align=2)
    assert plan.rects == [(94, 44, 12, 14), (636, 476, 4, 4)]
    for x, y, w, h in plan.rects:
        assert x % 2 == y % 2 == w % 2 == h % 2 == 0


def test_the_bad_box_corpus_is_skipped_counted_by_reason():
    boxes = [
        (100, 100, 40, 40),                    # kept
        (np.nan, 100, 40, 40), (100, np.inf, 40, 40), (100, 100, -np.inf, 40),
        (100, 100, -40, 40), (100, 100, 40, 0),            # invalid: 5
        (-100, -100, 40, 40), (1000, 100, 40, 40), (100, 1e308, 40, 40),  # outside: 3
        (320, 240, 3, 100),                     # small: 6 px wide (expanded) < 8
        (1e308, 1e308, 1e308, 1e308),           # invalid: expanded past the float range
    ]
    plan = plan_boxes(boxes, W, H, BoxOptions(expand=2.0))
    assert plan.rects[0] == (60, 60, 80, 80) and plan.rects[1:] == [None] * 10
    assert plan.skipped == {'invalid': 6, 'outside': 3, 'small': 1}
    assert plan.total_skipped == 10 and plan.kept == [(0, (60, 60, 80, 80))]


def test_a_finite_box_expanded_past_the_float_range_is_invalid_not_the_whole_image():
    plan = plan_boxes([(1e308, 1e308, 1e308, 1e308)], W, H, BoxOptions(expand=10))
    assert plan.rects == [None] and plan.skipped == {'invalid': 1}


def test_min_size_applies_to_the_clipped_crop():
    plan = plan_boxes([(2, 100, 20, 20), (100, 100, 8, 8)], W, H, BoxOptions(min_size=13))
    assert plan.rects == [None, None] and plan.skipped == {'small': 2}
    assert plan_boxes([(2, 100, 20, 20)], W, H, BoxOptions(min_size=12)).rects == \
        [(0, 90, 12, 20)]


def test_over_the_limit_the_largest_are_kept_in_the_detections_order():
    boxes = [(50, 50, 10, 10), (200, 200, 100, 100), (400, 100, 30, 30), (300, 400, 60, 60)]
    plan = plan_boxes(boxes, W, H, BoxOptions(max_boxes=2))
    assert [i for i, _ in plan.kept] == [1, 3]
    assert plan.skipped == {'over_limit': 2}


def test_ten_thousand_boxes_and_no_boxes():
    rng = np.random.default_rng(0)
    boxes = np.column_stack([rng.uniform(-100, 740, 10000), rng.uniform(-100, 580, 10000),
                             rng.uniform(-5, 200, 10000), rng.uniform(-5, 200, 10000)])
    boxes[::97, 0] = np.nan
    plan = plan_boxes(boxes, W, H, BoxOptions(max_boxes=16))
    assert len(plan.rects) == 10000 and len(plan.kept) == 16
    assert len(plan.kept) + plan.total_skipped == 10000
    areas = sorted(((r[2] * r[3]) for r in plan.rects if r is not None), reverse=True)
    assert areas[-1] >= max(w * h for w, h in _clipped_sizes(boxes, plan))
    empty = plan_boxes([], W, H)
    assert empty.rects == [] and empty.skipped == {}


def _clipped_sizes(boxes, plan):
    """The clipped sizes of the boxes skipped only for the limit (none larger than kept)."""
    everything = plan_boxes(boxes, W, H, BoxOptions(max_boxes=10000))
    kept = {i for i, _ in plan.kept}
    return [(r[2], r[3]) for i, r in everything.kept if i not in kept]


def test_boxes_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        as_boxes([(1, 2, 3)])
    assert as_boxes([]).shape == (0, 4)


def test_crop_views_the_frame_and_its_chroma():
    bgr = np.random.default_rng(1).integers(0, 255, (H, W, 3), np.uint8)
    raw = encode_raw(bgr, 'nv12')
    frame = image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)
    part = crop(frame, (10, 20, 30, 40))
    assert part.kind == 'nv12' and (part.width, part.height) == (30, 40)
    assert np.shares_memory(part.data, frame.data)
    assert np.array_equal(part.uv, frame.uv[10:30, 5:20])


@pytest.mark.parametrize('encoding', RAW_ENCODINGS)
def test_a_box_over_the_whole_image_gives_the_whole_frames_bytes_and_top_k(
        classifier, sample_bgr, encoding):
    raw = encode_raw(sample_bgr['chelsea'], encoding)
    frame = image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)
    whole = (frame.width / 2, frame.height / 2, frame.width, frame.height)
    plan, crops = classifier.convert_boxes(frame, [whole])
    assert plan.rects == [(0, 0, frame.width, frame.height)]
    assert np.array_equal(crops[0], classifier.convert(frame))
    results, _ = classifier.classify_boxes(frame, [whole])
    assert results[0] == classifier.classify(frame)


def test_classify_boxes_names_each_tile_of_a_mosaic(classifier, sample_bgr):
    """Four photos side by side: each tile's box gets the tile's own top-1, skipped boxes
    stay None in place."""
    from edge_classifier.tools.sample_camera import mosaic
    photos = [(name, sample_bgr[name]) for name in ('chelsea', 'coffee', 'camera', 'rocket')]
    image, tiles = mosaic(photos, 2, 640, 480)
    frame = image_to_frame('bgr8', 480, 640, 640 * 3, image.tobytes())
    boxes = [box for _, box in tiles] + [(np.nan, 0, 1, 1)]
    results, plan = classifier.classify_boxes(frame, boxes)
    assert results[4] is None and plan.skipped == {'invalid': 1}
    for (name, (cx, cy, w, h)), result in zip(tiles, results):
        x, y = int(cx - w / 2), int(cy - h / 2)
        tile = np.ascontiguousarray(image[y:y + int(h), x:x + int(w)])
        alone = classifier.classify(image_to_frame('bgr8', tile.shape[0], tile.shape[1],
                                                   tile.shape[1] * 3, tile.tobytes()))
        assert result == alone, name


def test_boxes_are_float64_and_bad_numbers_raise_no_warning():
    import warnings
    assert as_boxes([(1, 2, 3, 4)]).dtype == np.float64
    corpus = [(np.nan, 1, 2, 3), (np.inf, -np.inf, 1, 1), (1e308, 1e308, 1e308, 1e308),
              (-1e308, 5, 1e308, 1e308)]
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # NaN and overflow arithmetic stays silent
        plan = plan_boxes(corpus, W, H, BoxOptions(expand=10, square=True))
    assert plan.rects == [None] * 4


def test_zero_sizes_are_invalid_and_sub_pixel_sizes_small():
    plan = plan_boxes([(100, 100, 0, 40), (100, 100, 40, 0), (100, 100, 0.5, 40),
                       (100, 100, 40, 0.5)], W, H)
    assert plan.skipped == {'invalid': 2, 'small': 2}


def test_a_box_beside_the_image_is_outside_not_a_sliver():
    plan = plan_boxes([(-100, 100, 40, 40), (100, -100, 40, 40), (W + 100, 100, 40, 40),
                       (100, H + 100, 40, 40)], W, H, BoxOptions(min_size=1))
    assert plan.skipped == {'outside': 4}


def test_align_two_on_odd_edges_and_an_odd_image():
    plan = plan_boxes([(100, 50.5, 10, 11)], W, H, BoxOptions(min_size=2), align=2)
    assert plan.rects == [(94, 44, 12, 12)]          # y0 45 -> 44, y1 56 stays
    plan = plan_boxes([(638, 476, 10, 10)], 641, 479, BoxOptions(min_size=2), align=2)
    assert plan.rects == [(632, 470, 8, 8)]           # never past the last even column/row


def test_equal_boxes_over_the_limit_keep_the_first():
    plan = plan_boxes([(50 + i, 60, 20, 20) for i in range(40)], W, H,
                      BoxOptions(max_boxes=10))
    assert [i for i, _ in plan.kept] == list(range(10))


def test_nv12_crops_of_odd_boxes_are_even_through_the_classifier(classifier):
    bgr = np.random.default_rng(2).integers(0, 255, (H, W, 3), np.uint8)
    raw = encode_raw(bgr, 'nv12')
    frame = image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)
    plan, crops = classifier.convert_boxes(frame, [(101, 51, 21, 23), (333.3, 97.7, 45, 31)])
    for x, y, w, h in plan.rects:
        assert x % 2 == y % 2 == w % 2 == h % 2 == 0
    bgr_frame = image_to_frame('bgr8', H, W, W * 3, bgr.tobytes())
    plan_bgr, _ = classifier.convert_boxes(bgr_frame, [(101, 51, 21, 23)])
    assert plan_bgr.rects == [(90, 39, 22, 24)]       # BGR crops need no alignment
    assert len(crops) == 2
