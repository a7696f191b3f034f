"""The ROS-free core: config -> frame -> NV12 -> backend -> top-k.

Classifier runs one frame synchronously (the CLI, tests, benchmarks) and is the frame path
the worker pool (pool.py) runs on its threads.
"""
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .backends import create_backend
from .boxes import BoxOptions, crop, plan_boxes
from .nv12 import Geometry, chroma_align, nv12_size, to_nv12
from .postprocess import ClassFilter, load_labels, top_k


@dataclass(frozen=True)
class Settings:
    """What may change at run time, swapped as one object: a frame sees all of it or none."""
    top_k: int
    score_threshold: float
    class_filter: Optional[ClassFilter] = None

    @classmethod
    def from_config(cls, cfg, class_filter=None):
        return cls(cfg.top_k, cfg.score_threshold, class_filter)


class Classifier:
    """One model, loaded once; thread-safe. The frame path, in three stages that the CLI,
    the worker pool and the benchmarks all use: convert (frame -> NV12 at the model's
    input size), infer (NV12 -> scores, on whichever backend), postprocess (top-k)."""

    def __init__(self, cfg, backend=None, box_options=None, classes=(), class_thresholds=()):
        self.cfg = cfg
        self.geometry = Geometry.from_config(cfg)
        self.backend = create_backend(cfg, backend).load()
        try:
            self.labels = (load_labels(cfg.resolve(cfg.labels_path), cfg.num_classes)
                           if cfg.labels_path else None)
            self.settings = self.settings_for(cfg, classes, class_thresholds)
        except Exception:
            self.backend.close()
            raise
        self.box_options = box_options or BoxOptions()
        self._local = threading.local()

    def settings_for(self, cfg, classes=(), class_thresholds=()):
        """Settings for `cfg`'s top_k and score_threshold and a class filter (names or ids,
        "name_or_id:score"); a ConfigError names a class the labels do not have."""
        class_filter = None
        if classes or class_thresholds:
            class_filter = ClassFilter.parse(classes, class_thresholds, self.labels,
                                             cfg.num_classes)
        return Settings.from_config(cfg, class_filter)

    @property
    def untrained(self):
        return self.backend.untrained

    def nv12_buffer(self):
        """A new buffer for one NV12 frame of the model's input size."""
        return np.empty(nv12_size(self.geometry.width, self.geometry.height), np.uint8)

    def convert(self, frame, out=None):
        """Stage 1: a Frame cropped/resized to the model input, as NV12 bytes (into out)."""
        return to_nv12(frame, self.geometry, out=out)

    def convert_boxes(self, frame, boxes, options=None):
        """Stage 1 for a detector's boxes ((N, 4) centre x, centre y, width, height in
        pixels): (BoxPlan, [NV12 of each kept box, in the detections' order]). Each crop
        takes the whole-frame path: a box covering the image gives the frame's bytes."""
        plan = plan_boxes(boxes, frame.width, frame.height, options or self.box_options,
                          chroma_align(frame))
        return plan, [self.convert(crop(frame, rect)) for _, rect in plan.kept]

    def infer(self, nv12):
        """Stage 2: the backend on one NV12 buffer (the board's input format): scores."""
        return self.backend.infer([nv12])[0]

    def postprocess(self, scores, k=None, threshold=None):
        """Stage 3: softmax (if the config asks) and top-k above the score threshold."""
        settings = self.settings  # read once: a concurrent update is never half-applied
        return top_k(scores, settings.top_k if k is None else k,
                     settings.score_threshold if threshold is None else threshold,
                     self.labels, self.cfg.softmax, settings.class_filter)

    def classify(self, frame):
        """Frame -> NV12 -> backend -> top-k, synchronously (this thread's buffer)."""
        buf = getattr(self._local, 'nv12', None)
        if buf is None:
            buf = self._local.nv12 = self.nv12_buffer()
        return self.postprocess(self.infer(self.convert(frame, out=buf)))

    def classify_boxes(self, frame, boxes, options=None):
        """Each box of `frame` classified synchronously: (per detection its top-k, or None
        for a skipped box; the BoxPlan)."""
        plan, crops = self.convert_boxes(frame, boxes, options)
        results = [None] * len(plan.rects)
        for (index, _), nv12 in zip(plan.kept, crops):
            results[index] = self.postprocess(self.infer(nv12))
        return results, plan

    def close(self):
        self.backend.close()
