"""edge_classifier: ImageNet classifiers on robots (NV12 → BPU / ONNX Runtime → top-k)."""

__version__ = '0.1.0'
