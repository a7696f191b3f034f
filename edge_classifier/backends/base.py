"""The backend interface."""
import numpy as np

from ..errors import BackendError


class Backend:
    """Load once, infer batches of NV12 frames, close.

    infer() takes a sequence of 1-D uint8 NV12 buffers of the model's input size and
    returns float32 scores, shape (N, num_classes), as the model outputs them (softmax is
    the post-processing's job). infer() is safe to call from several threads at once.
    """
    name = 'base'

    def __init__(self, cfg):
        self.cfg = cfg
        self.width = cfg.input_width
        self.height = cfg.input_height
        self.num_classes = cfg.num_classes
        self.model_path = None
        self.untrained = False
        self.loaded = False

    def load(self):
        raise NotImplementedError

    def infer(self, nv12_batch):
        raise NotImplementedError

    def close(self):
        self.loaded = False

    def describe(self):
        """One line for logs and diagnostics."""
        weights = 'UNTRAINED (random weights)' if self.untrained else 'trained'
        return f'{self.name} {self.model_path} ({weights})'

    def _check_output(self, scores, n):
        scores = np.asarray(scores, dtype=np.float32).reshape(n, -1)
        if scores.shape[1] != self.num_classes:
            raise BackendError(f'{self.model_path}: model outputs {scores.shape[1]} scores per '
                               f'image, config {self.cfg.origin or "num_classes"} says '
                               f'{self.num_classes} (num_classes)')
        return scores

    def _require_file(self, path, key, looked=()):
        if not path.is_file():
            origin = self.cfg.origin or 'the parameters'
            also = f', nor in {", ".join(map(str, looked))}' if looked else ''
            raise BackendError(
                f'{self.name}: model file {path} not found ({key} in {origin}{also}). Fix: '
                f'{self.cfg.prepare_hint(key)}; or point {key} / models_dir '
                f'at the file')

    def __enter__(self):
        self.load()
        return self

    def __exit__(self, *exc):
        self.close()
