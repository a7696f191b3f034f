"""Scores to results: optional softmax, a class filter, top-k with a score threshold,
class names."""
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ConfigError, LabelsError, ScoresError


@dataclass(frozen=True)
class Hypothesis:
    class_id: str      # the class index as a string, as vision_msgs/ObjectHypothesis has it
    class_name: str
    score: float       # in [0, 1]

    def to_dict(self):
        return {'class_id': self.class_id, 'class_name': self.class_name,
                'score': round(self.score, 6)}


def softmax(scores):
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, eq=False)
class ClassFilter:
    """Which classes a result may hold, applied before top-k (so top-k holds the best
    allowed classes): `allowed`, a flag per class (None: all); `min_scores`, the lowest
    score kept per class (None: the global threshold only)."""
    allowed: Optional[np.ndarray] = None
    min_scores: Optional[np.ndarray] = None

    @classmethod
    def parse(cls, classes, class_thresholds, labels, num_classes):
        """From the node's parameters: `classes`, names or ids to keep (empty: all);
        `class_thresholds`, "name_or_id:score" entries. ConfigError names a bad entry and
        the closest labels."""
        allowed = min_scores = None
        if classes:
            allowed = np.zeros(num_classes, bool)
            for entry in classes:
                allowed[class_index('classes', entry, labels, num_classes)] = True
        if class_thresholds:
            min_scores = np.zeros(num_classes, np.float64)
            for entry in class_thresholds:
                name, sep, score = str(entry).rpartition(':')
                try:
                    value = float(score)
                except ValueError:
                    value = -1.0
                if not sep or not name.strip() or not 0.0 <= value <= 1.0:
                    raise ConfigError(f'parameter class_thresholds: {entry!r}: expected '
                                      f'"name_or_id:score" with a score from 0 to 1, e.g. '
                                      f'"espresso:0.6"')
                min_scores[class_index('class_thresholds', name, labels, num_classes)] = value
        return cls(allowed, min_scores)

    def keep(self, probs):
        """The indices of the classes a result may hold, given their scores."""
        keep = np.ones(probs.size, bool) if self.allowed is None else self.allowed.copy()
        if self.min_scores is not None:
            keep &= probs >= self.min_scores
        return np.flatnonzero(keep)


def class_index(key, entry, labels, num_classes):
    """A class named by its label (exact, else ignoring case) or by its id."""
    text = str(entry).strip()
    if text.isdigit():
        index = int(text)
        if index >= num_classes:
            raise ConfigError(f'parameter {key}: class id {index} is out of range: the model '
                              f'has {num_classes} classes (0..{num_classes - 1})')
        return index
    if labels is None:
        raise ConfigError(f'parameter {key}: {text!r}: the model has no labels (labels_path): '
                          f'name its classes by id (0..{num_classes - 1})')
    for candidates in (labels, [name.lower() for name in labels]):
        wanted = text if candidates is labels else text.lower()
        if wanted in candidates:
            return candidates.index(wanted)
    close = difflib.get_close_matches(text, labels, n=3, cutoff=0.5) or \
        [name for name in labels if text.lower() in name.lower()][:3]
    hint = f'; closest: {", ".join(close)}' if close else ''
    raise ConfigError(f'parameter {key}: class {text!r} is not in the labels{hint} (a name '
                      f'from labels_path, or a class id 0..{num_classes - 1})')


def top_k(scores, k, threshold=0.0, labels=None, apply_softmax=True, class_filter=None):
    """The k best classes of one score vector with score >= threshold, best first; with a
    class_filter, the k best of the classes it keeps."""
    scores = np.asarray(scores).reshape(-1)
    if not np.isfinite(scores).all():
        bad = int(np.count_nonzero(~np.isfinite(scores)))
        raise ScoresError(f'the model output {bad} non-finite score(s) of {scores.size} '
                          f'(NaN or infinity): a broken model or backend, no result published')
    probs = softmax(scores) if apply_softmax else np.clip(scores.astype(np.float64), 0.0, 1.0)
    candidates = None if class_filter is None else class_filter.keep(probs)
    if candidates is None:
        k = min(k, probs.size)
        idx = np.argpartition(-probs, k - 1)[:k]
    else:
        k = min(k, candidates.size)
        if not k:
            return []
        idx = candidates[np.argpartition(-probs[candidates], k - 1)[:k]]
    idx = idx[np.lexsort((idx, -probs[idx]))]  # by score, ties by index: deterministic
    out = []
    for i in idx:
        p = float(probs[i])
        if p < threshold:
            break
        name = labels[i] if labels is not None else str(int(i))
        out.append(Hypothesis(str(int(i)), name, p))
    return out


def load_labels(path, num_classes):
    """One class name per line, line i naming class i; the count must be num_classes."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f'labels file {path} not found (labels_path). Fix: run `make setup` or '
                          f'`python -m edge_classifier.tools.assets`, or set labels_path')
    names = [line.strip() for line in path.read_text(encoding='utf-8').splitlines()]
    while names and not names[-1]:
        names.pop()
    if len(names) != num_classes:
        raise LabelsError(f'labels file {path} has {len(names)} names, the model has '
                          f'{num_classes} classes (num_classes); one name per line, in class order')
    return names
