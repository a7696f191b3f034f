"""Command-line tools: assets, models, benchmark, sample camera, echo."""
