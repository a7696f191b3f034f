"""Checks that need the package registry (`make check-registry`; CI runs them, `make test`
does not: the suite passes with no network). They share test/'s helpers."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
