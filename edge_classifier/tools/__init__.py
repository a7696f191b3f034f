"""Command-line tools: assets (labels, sample photos), models (prepare/list model files),
bench (bare backend vs pipeline), node_bench (the node over DDS) and its baselines (the
floor and naive nodes it measures against), evaluate (top-1/top-5), quantize (int8),
sample_camera, echo, demo, export_torch (runs in the export venv)."""
