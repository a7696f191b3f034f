"""Inference backends behind one small interface (load once, infer a batch of NV12
frames, close), chosen by the config's `backend` key."""
from .base import Backend, BackendError

__all__ = ['Backend', 'BackendError', 'create_backend', 'bpu_adapter', 'bpu_available']


def bpu_adapter():
    """The BPU adapter of the board's Python runtime that imports: hobot_dnn's (pyeasy_dnn),
    else hbm_runtime's; BackendError naming both when neither does."""
    from .bpu import BpuBackend, import_dnn
    from .hbm import HbmBackend, import_hbm
    try:
        import_dnn()
        return BpuBackend
    except BackendError as dnn_error:
        try:
            import_hbm()
            return HbmBackend
        except BackendError as hbm_error:
            raise BackendError(f'{dnn_error}. The newer runtime is not importable either: '
                               f'{hbm_error}') from None


def bpu_available():
    try:
        bpu_adapter()
        return True
    except BackendError:
        return False


def create_backend(cfg, backend=None):
    """The backend a config asks for (`backend` overrides cfg.backend), not yet loaded.

    bpu: hobot_dnn's adapter where it imports, else hbm_runtime's. auto: the BPU when one
    of them imports and the compiled model is found (bpu_path, then board_model_dirs), else
    ONNX Runtime.
    """
    name = backend or cfg.backend
    if name == 'auto':
        name = 'bpu' if bpu_available() and cfg.bpu_model()[0].is_file() else 'onnxruntime'
    if name == 'onnxruntime':
        from .onnxruntime import OnnxRuntimeBackend
        return OnnxRuntimeBackend(cfg)
    if name == 'bpu':
        try:
            return bpu_adapter()(cfg)
        except BackendError:
            from .bpu import BpuBackend   # its load() says what is missing, and the fix
            return BpuBackend(cfg)
    raise BackendError(f'unknown backend {name!r}; expected one of auto, onnxruntime, bpu')
