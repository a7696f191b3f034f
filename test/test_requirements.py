"""The standalone environments install on the Pythons robots run.

Each pinned requirement must have a wheel for every Python its file supports: 3.10
(Ubuntu 22.04, ROS 2 Humble, the RDK X5), 3.11 and 3.12 (Ubuntu 24.04, Jazzy) for
standalone/requirements.txt; 3.11 for the Jazzy file (its ROS wheels are cp311 only).
pip evaluates environment markers against the interpreter it runs on even with
--python-version, so markers are evaluated here for each target and pins checked one by
one. The check that asks the registry for each pin's wheel is checks/test_registry.py
(no network here).
"""
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


TARGETS = {
    'requirements.txt': ('3.10', '3.11', '3.12'),
    'requirements-jazzy.txt': ('3.11',),
}


def pins(path, python):
    """The requirements of `path` that apply on `python` (marker evaluated for it)."""
    env = dict(default_environment(), python_version=python, python_full_version=python + '.0')
    out = []
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            out.append(req)
    return out


def _names(reqs):
    return [r.name.lower().replace('_', '-') for r in reqs]


@pytest.mark.parametrize('name,python', [(n, p) for n, ps in TARGETS.items() for p in ps])
def test_every_pin_has_exactly_one_version_per_python(name, python):
    reqs = pins(ROOT / 'standalone' / name, python)
    names = _names(reqs)
    assert len(names) == len(set(names)), f'{name}: a package is pinned twice on {python}'
    loose = [str(r) for r in reqs if len(r.specifier) != 1 or
             next(iter(r.specifier)).operator != '==']
    assert not loose, f'{name}: not pinned with == on {python}: {loose}'
