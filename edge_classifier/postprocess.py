"""Scores to results: optional softmax, top-k with a score threshold, class names."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LabelsError, ScoresError


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


def top_k(scores, k, threshold=0.0, labels=None, apply_softmax=True):
    """The k best classes of one score vector with score >= threshold, best first."""
    scores = np.asarray(scores).reshape(-1)
    if not np.isfinite(scores).all():
        bad = int(np.count_nonzero(~np.isfinite(scores)))
        raise ScoresError(f'the model output {bad} non-finite score(s) of {scores.size} '
                          f'(NaN or infinity): a broken model or backend, no result published')
    probs = softmax(scores) if apply_softmax else np.clip(scores.astype(np.float64), 0.0, 1.0)
    k = min(k, probs.size)
    idx = np.argpartition(-probs, k - 1)[:k]
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
