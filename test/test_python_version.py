"""The package runs on the RDK X5's Python (3.10, Ubuntu 22.04 / ROS 2 Humble).

vermin (PyPI) reads the code and reports the newest language feature, stdlib module or
function it uses; anything newer than 3.10 in edge_classifier/ or launch/ fails here, on
whatever Python the tests themselves run.
"""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


TARGET = '3.10'


def vermin(*paths):
    exe = shutil.which('vermin', path=str(Path(sys.executable).parent)) or 'vermin'
    return subprocess.run([exe, f'-t={TARGET}-', '--violations', '--no-tips',
                           '--eval-annotations', '--no-parse-comments', *map(str, paths)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_package_and_launch_files_need_no_python_newer_than_3_10():
    proc = vermin(ROOT / 'edge_classifier', ROOT / 'launch')
    # vermin parses with the running Python: syntax it cannot parse is an 'error:' line
    # with exit code 0, so that counts as a failure too.
    assert proc.returncode == 0 and 'error:' not in proc.stdout, \
        f'needs a Python newer than {TARGET}:\n{proc.stdout}'


def test_the_check_catches_newer_python(tmp_path):
    # The same command must fail on 3.11-only code, or the test above proves nothing.
    newer = tmp_path / 'newer.py'
    newer.write_text('import tomllib\n')
    proc = vermin(newer)
    assert proc.returncode != 0 and 'tomllib' in proc.stdout, proc.stdout
