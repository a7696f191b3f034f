"""The overlay image: the classified frame with its top-k drawn on it (ROS-free).

frame_to_bgr() turns a Frame of any supported encoding into BGR at a chosen width;
draw() writes the model name and the top-k (names and scores) on it; OverlayWorker does
both on a thread of its own from a slot per source, so drawing never delays inference and
a busy drawer drops stale frames (the newest result of a source wins).
"""
import collections
import threading
import traceback

import cv2
import numpy as np

from .nv12 import nv12_to_rgb

_TO_BGR = {'rgb': cv2.COLOR_RGB2BGR, 'bgra': cv2.COLOR_BGRA2BGR, 'rgba': cv2.COLOR_RGBA2BGR,
           'gray': cv2.COLOR_GRAY2BGR, 'yuyv': cv2.COLOR_YUV2BGR_YUYV,
           'uyvy': cv2.COLOR_YUV2BGR_UYVY}


def frame_to_bgr(frame, width=0):
    """A new BGR array of the frame, scaled to `width` pixels wide (0: the frame's size)."""
    if frame.kind == 'nv12':
        h, w = frame.data.shape
        nv12 = np.empty((h * 3 // 2, w), np.uint8)
        nv12[:h] = frame.data
        nv12[h:] = frame.uv.reshape(h // 2, w)
        bgr = nv12_to_rgb(nv12, w, h, order='bgr')
    elif frame.kind == 'bgr':
        bgr = frame.data
    else:
        bgr = cv2.cvtColor(np.ascontiguousarray(frame.data), _TO_BGR[frame.kind])
    if width and width != bgr.shape[1]:
        height = max(1, round(bgr.shape[0] * width / bgr.shape[1]))
        interpolation = cv2.INTER_AREA if width < bgr.shape[1] else cv2.INTER_LINEAR
        return cv2.resize(bgr, (width, height), interpolation=interpolation)
    return bgr.copy() if bgr is frame.data else bgr


BOX_COLOURS = ((0, 255, 0), (255, 128, 0), (0, 128, 255), (255, 0, 255), (0, 255, 255))


def draw_boxes(bgr, boxes, scale=1.0, avoid=(0, 0)):
    """Each (rect, top-1 Hypothesis or None) as a rectangle with its label; rects in the
    source frame's pixels, drawn on an image `scale` times its size. A label that would
    land on the top-left region `avoid` (width, height: draw's banner) goes below it."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    text_scale = max(0.35, min(0.8, bgr.shape[1] / 1200))
    for i, ((x, y, w, h), hypothesis) in enumerate(boxes):
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        x0, y0 = int(round(x * scale)), int(round(y * scale))
        x1, y1 = int(round((x + w) * scale)) - 1, int(round((y + h) * scale)) - 1
        cv2.rectangle(bgr, (x0, y0), (x1, y1), colour, 2)
        if hypothesis is None:
            continue
        label = f'{hypothesis.class_name} {hypothesis.score:.2f}'
        (tw, th), base = cv2.getTextSize(label, font, text_scale, 1)
        ty = max(y0, th + base + 2)
        if x0 < avoid[0] and ty - th - base - 2 < avoid[1]:
            ty = avoid[1] + th + base + 2
        cv2.rectangle(bgr, (x0, ty - th - base - 2), (x0 + tw + 4, ty), colour, -1)
        cv2.putText(bgr, label, (x0 + 2, ty - base), font, text_scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return bgr


def _banner(bgr, title, hypotheses):
    """draw's layout: (lines, font scale, thickness, line height, banner width, height)."""
    lines = [title] + [f'{h.class_name}  {h.score:.2f}' for h in hypotheses]
    scale = max(0.35, min(1.2, bgr.shape[1] / 900))
    thickness = 1 if scale < 0.8 else 2
    sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0]
             for line in lines]
    line_h = max(h for _, h in sizes) + int(10 * scale) + 2
    return (lines, scale, thickness, line_h, min(bgr.shape[1], max(w for w, _ in sizes) + 12),
            min(bgr.shape[0], line_h * len(lines) + 8))


def banner_size(bgr, title, hypotheses):
    """(width, height) of the top-left region draw() darkens and writes on."""
    return _banner(bgr, title, hypotheses)[4:]


def draw(bgr, title, hypotheses, boxes=None, box_scale=1.0):
    """Write `title` and one 'name  score' line per hypothesis on a dark box, top left;
    `boxes` (draw_boxes') first, their labels clear of that box."""
    lines, scale, thickness, line_h, box_w, box_h = _banner(bgr, title, hypotheses)
    if boxes:
        draw_boxes(bgr, boxes, box_scale, avoid=(box_w, box_h))
    font = cv2.FONT_HERSHEY_SIMPLEX
    region = bgr[:box_h, :box_w]
    region[:] = (region * 0.35).astype(np.uint8)  # darken: legible on any picture
    for i, line in enumerate(lines):
        color = (0, 255, 255) if i == 0 else (255, 255, 255)
        cv2.putText(bgr, line, (6, 4 + line_h * (i + 1) - int(5 * scale)), font, scale, color,
                    thickness, cv2.LINE_AA)
    return bgr


class OverlayWorker:
    """Draws and hands out overlays on its own thread, from a latest-result slot per source.

    submit(source, frame, hypotheses, meta, publish, boxes=None): publish(bgr, meta) is
    called on the thread; `boxes` (rect, top-1) are drawn with their labels. A result
    that arrives while the same source's previous one still waits replaces it (counted);
    sources waiting are drawn in the order they started waiting, so a fast camera does not
    starve a slow one's overlay. Results of one source are submitted in order (the pool's
    emit), so its overlays are published in order too.
    """

    def __init__(self, title, width=0, logger=None):
        self.title = title
        self.width = width
        self.log = logger
        self.drawn = 0
        self.dropped = 0
        self._jobs = collections.OrderedDict()
        self._cond = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, name='edge_classifier-overlay',
                                        daemon=True)
        self._thread.start()

    def submit(self, source, frame, hypotheses, meta, publish, boxes=None):
        with self._cond:
            if source in self._jobs:
                self.dropped += 1
            self._jobs[source] = (frame, hypotheses, meta, publish, boxes)
            self._cond.notify()

    def discard(self):
        """Forget the results waiting to be drawn (counted dropped): on deactivate."""
        with self._cond:
            self.dropped += len(self._jobs)
            self._jobs.clear()

    def alive(self):
        return self._thread.is_alive()

    def _run(self):
        while True:
            with self._cond:
                while self._running and not self._jobs:
                    self._cond.wait()
                if not self._running:
                    return
                _, (frame, hypotheses, meta, publish, boxes) = self._jobs.popitem(last=False)
            try:
                bgr = frame_to_bgr(frame, self.width)
                drawn = draw(bgr, self.title, hypotheses, boxes, bgr.shape[1] / frame.width)
                if publish(drawn, meta) is not False:
                    self.drawn += 1
                else:
                    self.dropped += 1
            except Exception:  # a drawing or publishing failure must not end the thread
                if self.log is not None:
                    self.log.error(f'overlay failed:\n{traceback.format_exc()}')

    def stop(self, timeout=2.0):
        with self._cond:
            self._running = False
            self._jobs.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()
