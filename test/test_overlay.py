"""The overlay, ROS-free: what draw() puts where, and OverlayWorker's promises (latest
result per source, sources in turn, failures logged and survived, a clean stop)."""
import threading

import cv2
import numpy as np
import pytest

from edge_classifier.frames import Frame
from edge_classifier.nv12 import bgr_to_nv12
from edge_classifier.overlay import (BOX_COLOURS, OverlayWorker, banner_size, draw, draw_boxes,
                                     frame_to_bgr)
from edge_classifier.postprocess import Hypothesis

from helpers import Log, wait_for

HYPS = [Hypothesis('967', 'espresso', 0.955), Hypothesis('968', 'cup', 0.014)]


def _bgr_frame(bgr):
    return Frame('bgr', bgr)


def _text_box(before, after):
    """(width, height) of the darkened box at the top left, measured along its margins (row
    1 and column 1 hold no glyph; antialiased glyphs may spill past the box elsewhere)."""
    row = np.any(after[1] != before[1], axis=1)
    col = np.any(after[:, 1] != before[:, 1], axis=1)
    return int(np.argmin(row)) if not row.all() else row.size, \
        int(np.argmin(col)) if not col.all() else col.size


@pytest.mark.parametrize('width', [320, 900, 1800])
def test_the_box_fits_the_lines_with_a_margin_and_darkens_what_is_under_it(width):
    grey = np.full((width * 3 // 4, width, 3), 200, np.uint8)
    out = draw(grey.copy(), 'efficientnet_lite0', HYPS)
    scale = max(0.35, min(1.2, width / 900))
    thickness = 1 if scale < 0.8 else 2
    sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0]
             for t in ('efficientnet_lite0', 'espresso  0.95', 'cup  0.01')]
    line_h = max(h for _, h in sizes) + int(10 * scale) + 2
    assert _text_box(grey, out) == (max(w for w, _ in sizes) + 12, 3 * line_h + 8)
    assert tuple(out[1, 1]) == (70, 70, 70)   # 200 * 0.35, outside the glyphs
    box_w, box_h = _text_box(grey, out)
    assert np.all(out[box_h + 2:] == 200) and np.all(out[:, box_w + 2:] == 200)


def test_the_title_is_yellow_and_the_results_white():
    black = np.zeros((300, 400, 3), np.uint8)
    out = draw(black.copy(), 'model', HYPS)
    px = out.astype(int)
    yellow = (px[..., 0] < 60) & (px[..., 1] > 150) & (px[..., 2] > 150)
    white = (px[..., 0] > 150) & (px[..., 1] > 150) & (px[..., 2] > 150)
    assert yellow.any() and white.any()   # (antialiasing: shades, not exact colours)
    title_rows = np.nonzero(yellow)[0]
    result_rows = np.nonzero(white)[0]
    assert title_rows.max() < result_rows.min()   # the title on top
    assert title_rows.min() > 4                   # below the top margin


def test_text_scales_with_the_image_within_bounds():
    def box(width):
        img = np.full((width, width, 3), 128, np.uint8)
        return _text_box(img, draw(img.copy(), 'm', HYPS[:1]))
    assert box(200) == box(300)              # 0.35 at most this small
    assert box(900)[1] > box(450)[1]         # in between, with the width
    assert box(1400) == box(2000)            # 1.2 at most


def test_a_frame_smaller_than_the_text_gets_the_box_cut_at_its_edges():
    tiny = np.full((20, 30, 3), 100, np.uint8)
    out = draw(tiny.copy(), 'a long model name', HYPS)
    assert np.all(out[0, :] != 100)  # the whole frame is under the box


def test_nv12_frames_are_drawn_in_their_colours(sample_bgr):
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:240, :320])
    nv12 = bgr_to_nv12(bgr).reshape(360, 320)
    frame = Frame('nv12', nv12[:240], uv=nv12[240:].reshape(120, 160, 2))
    out = frame_to_bgr(frame)
    assert out.shape == (240, 320, 3) and np.abs(out.astype(int) - bgr).mean() < 4
    half = frame_to_bgr(frame, 160)
    assert half.shape == (120, 160, 3)


# ---- OverlayWorker ---------------------------------------------------------------------
class Sink:
    def __init__(self, answer=None, block=None):
        self.got, self.answer, self.block = [], answer, block
        self.event = threading.Condition()

    def __call__(self, bgr, meta):
        if self.block is not None:
            self.block.wait(5)
        with self.event:
            self.got.append((bgr, meta))
            self.event.notify_all()
        return self.answer

    def wait(self, n, timeout=5):
        with self.event:
            return self.event.wait_for(lambda: len(self.got) >= n, timeout)


def test_the_worker_draws_at_its_width_and_counts(sample_bgr):
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:240, :320])
    worker = OverlayWorker('lite0', width=160)
    sink = Sink()
    try:
        worker.submit('cam', _bgr_frame(bgr), HYPS, 'meta-1', sink)
        assert sink.wait(1)
        out, meta = sink.got[0]
        assert meta == 'meta-1' and out.shape == (120, 160, 3)
        assert not np.shares_memory(out, bgr)
        assert worker.alive()
        assert wait_for(lambda: worker.drawn == 1) and worker.dropped == 0
    finally:
        assert worker.stop()
    assert not worker.alive()


def test_a_newer_result_replaces_the_waiting_one_and_sources_take_turns(sample_bgr):
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:60, :80])
    gate = threading.Event()
    sink = Sink(block=gate)
    worker = OverlayWorker('m')
    try:
        worker.submit('a', _bgr_frame(bgr), HYPS, 'a0', sink)   # taken, blocks in publish
        assert wait_for(lambda: not worker._jobs)
        worker.submit('a', _bgr_frame(bgr), HYPS, 'a1', sink)
        worker.submit('b', _bgr_frame(bgr), HYPS, 'b1', sink)
        worker.submit('a', _bgr_frame(bgr), HYPS, 'a2', sink)   # replaces a1, keeps a's turn
        gate.set()
        assert sink.wait(3)
        assert [meta for _, meta in sink.got] == ['a0', 'a2', 'b1']
        assert worker.dropped == 1 and wait_for(lambda: worker.drawn == 3)
    finally:
        worker.stop()


def test_a_refused_publish_counts_dropped_and_discard_counts_the_waiting(sample_bgr):
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:60, :80])
    refused = Sink(answer=False)
    worker = OverlayWorker('m')
    try:
        worker.submit('a', _bgr_frame(bgr), HYPS, 1, refused)
        assert refused.wait(1) and wait_for(lambda: worker.dropped == 1)
        assert worker.drawn == 0
        gate = threading.Event()
        blocked = Sink(block=gate)
        worker.submit('a', _bgr_frame(bgr), HYPS, 2, blocked)
        assert wait_for(lambda: not worker._jobs)
        worker.submit('b', _bgr_frame(bgr), HYPS, 3, blocked)
        worker.submit('c', _bgr_frame(bgr), HYPS, 4, blocked)
        worker.discard()
        assert worker.dropped == 3
        gate.set()
        assert blocked.wait(1) and wait_for(lambda: worker.drawn == 1)
    finally:
        worker.stop()


def test_a_failure_is_logged_and_the_thread_goes_on(sample_bgr):
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:60, :80])
    log = Log()

    def broken(bgr, meta):
        raise RuntimeError('publisher gone')
    worker = OverlayWorker('m', logger=log)
    sink = Sink()
    try:
        worker.submit('a', _bgr_frame(bgr), HYPS, 1, broken)
        worker.submit('b', Frame('bgr', None), HYPS, 2, sink)  # cannot be drawn
        assert wait_for(lambda: len(log.errors) == 2)
        assert log.errors[0].startswith('overlay failed:\nTraceback')
        assert 'RuntimeError: publisher gone' in log.errors[0]
        worker.submit('a', _bgr_frame(bgr), HYPS, 3, sink)
        assert sink.wait(1) and sink.got[0][1] == 3 and worker.alive()
    finally:
        worker.stop()
    silent = OverlayWorker('m')   # no logger: still survives
    try:
        silent.submit('a', _bgr_frame(bgr), HYPS, 1, broken)
        silent.submit('a', _bgr_frame(bgr), HYPS, 2, sink)
        assert sink.wait(2) and silent.alive()
    finally:
        silent.stop()


def test_stop_forgets_the_waiting_results_and_reports_a_stuck_thread(sample_bgr):
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:60, :80])
    gate = threading.Event()
    sink = Sink(block=gate)
    worker = OverlayWorker('m')
    worker.submit('a', _bgr_frame(bgr), HYPS, 1, sink)
    assert wait_for(lambda: not worker._jobs)
    worker.submit('b', _bgr_frame(bgr), HYPS, 2, sink)
    assert worker.stop(timeout=0.2) is False      # stuck in publish
    gate.set()
    assert wait_for(lambda: not worker.alive())
    assert [meta for _, meta in sink.got] == [1]  # b was forgotten, not drawn
    assert worker._thread.name == 'edge_classifier-overlay' and worker._thread.daemon


def test_scaling_uses_area_down_linear_up_and_keeps_at_least_a_row(sample_bgr):
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:120, :160])
    frame = _bgr_frame(bgr)
    assert np.array_equal(frame_to_bgr(frame, 80),
                          cv2.resize(bgr, (80, 60), interpolation=cv2.INTER_AREA))
    assert np.array_equal(frame_to_bgr(frame, 320),
                          cv2.resize(bgr, (320, 240), interpolation=cv2.INTER_LINEAR))
    same = frame_to_bgr(frame, 160)
    assert np.array_equal(same, bgr) and not np.shares_memory(same, bgr)
    strip = _bgr_frame(np.zeros((1, 1000, 3), np.uint8))
    assert frame_to_bgr(strip, 10).shape == (1, 10, 3)


def test_boxes_are_drawn_scaled_with_their_top1_label():
    """Rects in source pixels, drawn on an image half the size: each outline where the box
    is, in its colour; a label only for a box with a top-1."""
    grey = np.full((240, 320, 3), 128, np.uint8)
    boxes = [((100, 80, 200, 160), HYPS[0]), ((400, 300, 100, 100), None)]
    out = draw_boxes(grey.copy(), boxes, scale=0.5)
    # the first box: (50, 40) to (149, 119) on the half-size image, 2 px outline
    assert tuple(out[80, 50]) == BOX_COLOURS[0] and tuple(out[80, 149]) == BOX_COLOURS[0]
    assert tuple(out[119, 100]) == BOX_COLOURS[0]
    assert tuple(out[80, 100]) == (128, 128, 128)            # inside: untouched
    assert tuple(out[175, 200]) == BOX_COLOURS[1]            # the second box's left edge
    # the label sits on a filled bar of the box's colour above its top-left corner
    # (> 30 % of the bar's colour: Jazzy's OpenCV antialiases more of it than 5.0 does)
    bar = out[28:39, 52:80]
    assert np.all(bar == BOX_COLOURS[0], axis=2).mean() > 0.3
    assert np.any(bar[..., 1] < 100)                          # dark glyphs on the bar
    # no label for the box without a top-1: nothing drawn above it
    assert np.all(out[140:149, 200:240] == 128)


def test_a_box_label_under_the_banner_moves_below_it():
    """A box at the frame's top-left corner: its label would sit under draw()'s banner (the
    model name and top-k), so it goes right below the banner; elsewhere it stays put."""
    grey = np.full((240, 320, 3), 128, np.uint8)
    boxes = [((0, 0, 200, 200), HYPS[0])]
    (_, th), base = cv2.getTextSize(f'{HYPS[0].class_name} {HYPS[0].score:.2f}',
                                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
    bar_h = th + base + 2
    plain = np.all(draw_boxes(grey.copy(), boxes) == BOX_COLOURS[0], axis=2)
    assert plain[2:bar_h, 3:20].mean() > 0.3                # the bar at the very top
    title = 'efficientnet_lite0 (onnxruntime)'
    banner = banner_size(grey, title, HYPS[:2])
    out = draw_boxes(grey.copy(), boxes, avoid=banner)
    bar = np.all(out == BOX_COLOURS[0], axis=2)
    assert not bar[2:banner[1], 3:banner[0]].any()           # nothing but the outline there
    assert bar[banner[1] + 1:banner[1] + bar_h, 3:20].mean() > 0.3   # right below it
    # draw() with the boxes does just that (the overlay worker's path)
    assert np.array_equal(draw(grey.copy(), title, HYPS[:2], boxes),
                          draw(out, title, HYPS[:2]))
    far = draw_boxes(grey.copy(), [((200, 100, 100, 100), HYPS[0])], avoid=banner)
    assert np.all(far == BOX_COLOURS[0], axis=2)[100 - bar_h + 1:100, 203:220].mean() > 0.3


def test_the_overlay_worker_draws_the_boxes_it_is_given():
    bgr = np.full((240, 320, 3), 90, np.uint8)
    got = []
    worker = OverlayWorker('tiny', width=0)
    try:
        worker.submit('cam', _bgr_frame(bgr), [], 'm', lambda image, meta: got.append(image),
                      boxes=[((200, 100, 60, 60), HYPS[1])])
        assert wait_for(lambda: got)
    finally:
        worker.stop()
    assert tuple(got[0][130, 200]) == BOX_COLOURS[0]
    assert np.all(bgr == 90)                                  # the caller's frame untouched


def test_box_labels_have_the_text_size_of_the_image_width_and_follow_unlabelled_boxes():
    """An 1800 px wide image: label text at the 0.8 cap; the bar is exactly the text's
    size plus its margins, its glyphs dark and antialiased; a box without a top-1 before
    it does not stop the labels of the boxes after it."""
    width, height = 1800, 1200
    grey = np.full((height, width, 3), 128, np.uint8)
    label = f'{HYPS[0].class_name} {HYPS[0].score:.2f}'
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 1)
    x0, y0 = 400, 300
    out = draw_boxes(grey.copy(), [((100, 100, 50, 50), None),
                                   ((x0, y0, 300, 200), HYPS[0])])
    colour = BOX_COLOURS[1]
    top, bottom = y0 - th - base - 2, y0            # the bar sits on the box's top edge
    bar = np.all(out == colour, axis=2)
    rows = np.flatnonzero(bar[:, x0 + tw + 2])      # a column right of the text
    assert rows.min() == top and rows.max() >= bottom
    assert not bar[top - 1, x0 + tw + 2]
    cols = np.flatnonzero(bar[top + 1])             # the bar's top row: no glyph
    assert cols.min() == x0 and cols.max() == x0 + tw + 4
    assert not bar[top + 1, x0 + tw + 5]
    inside = out[top:bottom, x0:x0 + tw + 5]
    dark = np.all(inside < 60, axis=2)
    shades = ~np.all(inside == colour, axis=2) & ~dark
    assert dark.any() and shades.any()              # black glyphs, antialiased edges
    # the box outline: its last column and row are drawn, the next ones are not
    x1, y1 = x0 + 300 - 1, y0 + 200 - 1
    assert np.all(out[y0 + 100, x1] == colour) and np.all(out[y1, x0 + 150] == colour)
    assert np.all(out[y0 + 100, x1 + 2] == 128) and np.all(out[y1 + 2, x0 + 150] == 128)
    assert np.all(out[y0 + 100, x0 + 150] == 128)   # the inside untouched
