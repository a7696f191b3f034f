"""What a fresh machine gets from the package registry (needs the network: `make
check-registry`, run by CI; never part of `make test`)."""
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_requirements import ROOT, TARGETS, pins

# Pure-Python projects that publish only a source distribution: pip builds them on any
# Python, so a missing wheel is not a failure. (None is pinned directly today; EmPy, which
# the rosidl wheels pull in, is the usual example.)
SOURCE_ONLY = {'empy'}


@pytest.mark.parametrize('name,python', [(n, p) for n, ps in TARGETS.items() for p in ps])
def test_every_pin_has_a_wheel_for_the_python(name, python, tmp_path):
    reqs = pins(ROOT / 'standalone' / name, python)

    def wheel(req):
        spec = f'{req.name}{req.specifier}'
        proc = subprocess.run(
            [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
             '--disable-pip-version-check', '--python-version', python,
             '--dest', str(tmp_path / req.name), spec],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode == 0 or req.name.lower() in SOURCE_ONLY:
            return None
        reason = [ln for ln in proc.stdout.splitlines() if ln.startswith('ERROR')]
        return f'{spec}: {reason[0] if reason else proc.stdout[-300:]}'

    with ThreadPoolExecutor(6) as pool:
        missing = [m for m in pool.map(wheel, reqs) if m]
    assert not missing, (f'standalone/{name} on Python {python}: no wheel for\n  ' +
                         '\n  '.join(missing) +
                         '\nadd a pin with a python_version marker for that Python')
