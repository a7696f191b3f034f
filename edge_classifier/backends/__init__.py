"""Inference backends behind one small interface (load once, infer a batch of NV12
frames, close), chosen by the config's `backend` key."""
import importlib

from .base import Backend, BackendError

__all__ = ['Backend', 'BackendError', 'create_backend', 'bpu_available']


def bpu_available():
    from .bpu import import_dnn
    try:
        import_dnn()
        return True
    except BackendError:
        return False


def create_backend(cfg, backend=None):
    """The backend a config asks for (`backend` overrides cfg.backend), not yet loaded.

    auto: the BPU when the board's hobot_dnn imports and the .bin exists, else ONNX Runtime.
    """
    name = backend or cfg.backend
    if name == 'auto':
        name = 'bpu' if bpu_available() and cfg.resolve(cfg.bpu_path).is_file() \
            else 'onnxruntime'
    modules = {'onnxruntime': ('.onnxruntime', 'OnnxRuntimeBackend'),
               'bpu': ('.bpu', 'BpuBackend')}
    if name not in modules:
        raise BackendError(f'unknown backend {name!r}; expected one of auto, '
                           + ', '.join(modules))
    module, cls = modules[name]
    return getattr(importlib.import_module(module, __name__), cls)(cfg)
