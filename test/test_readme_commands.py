"""Every ```bash block of the README runs as written in the standalone environment, or says
in the block what it needs (a ROS 2 install, the board, root, an opt-in download): the
README's commands cannot drift from what the package does.

How a block is walked (in README order, from the repository root, one shell each):
  * skipped, with its reason, when its first line is a comment naming what it needs
    (`# on a ROS 2 install`, `# on the board`, `# as root`, `# opt-in`); a command line
    that starts with `ros2` is a ROS 2 install's too (the standalone environment has none);
  * `make test*`: the suite itself (this test runs inside it);
  * commands that run until Ctrl-C (the nodes, `make demo-web`, and a line ending in `&`,
    which runs in the background for the rest of its block) run for a while, must still be
    running then, and end cleanly on SIGINT (exit 0 or 130, no traceback);
  * everything else must end by itself with exit 0 and no traceback;
  * short durations: benchmarks get `--seconds`/`--rounds` small enough for a test (argparse
    takes the last value), nothing else is changed;
  * `.venv/bin/` is this interpreter's environment (the suite also runs in
    .venv-jazzy, .venv-python3.10, ...).
build/ (the demos' scratch folder, `make clean` removes it) is emptied first.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


README = ROOT / 'README.md'
NEEDS = ('# on a ROS 2 install', '# on the board', '# as root', '# opt-in')


RUNS_UNTIL_STOPPED = re.compile(r'(^|/)(classifier_node|classifier_lifecycle_node|'
                                r'sample_camera|web_view|classification_echo)\b|'
                                r'^make demo-web\b')
SHORT = {'edge-classifier-bench': ' --seconds 0.4 --rounds 1',
         'edge_classifier.tools.node_bench': ' --seconds 2 --rounds 1 --cameras-seconds 0'}
PLACEHOLDER = re.compile(r'\[--|\b(BAG|OUT|IMAGES|CALIB_DIR|DIR|NAME|MS)\b')
RUNNING_FOR = 8.0   # s a command that runs until stopped must keep running


def bash_blocks():
    """[(line number, [command lines])] of the README's ```bash blocks."""
    text = README.read_text()
    blocks = []
    for match in re.finditer(r'```bash\n(.*?)```', text, re.S):
        line = text[:match.start()].count('\n') + 2
        blocks.append((line, match.group(1).rstrip('\n').splitlines()))
    return blocks


def commands(lines):
    """The block's commands: comment lines dropped, trailing comments kept (bash ignores
    them), `\\` continuations joined."""
    out, pending = [], ''
    for line in lines:
        if line.lstrip().startswith('#') and not pending:
            continue
        if line.rstrip().endswith('\\'):
            pending += line.rstrip()[:-1] + ' '
            continue
        out.append((pending + line).strip())
        pending = ''
    return [c for c in out if c]


def needs(lines):
    first = lines[0].strip() if lines else ''
    return next((n[2:] for n in NEEDS if first.startswith(n)), None)


def line_needs(command):
    """What a command line says it needs in its trailing comment (`# opt-in: ...`)."""
    comment = command.split(' #', 1)[1].strip() if ' #' in command else ''
    return next((n[2:] for n in NEEDS if comment.startswith(n[2:])), None)


def prepared(command):
    """The command as this test runs it: the environment of this run (its interpreter's
    bin/, and make told to use it without setting anything up: the suite needs no network),
    short benchmark windows."""
    env_bin = str(Path(sys.executable).parent) + '/'
    plain = command.split(' #', 1)[0].rstrip().replace('.venv/bin/', env_bin)
    make = re.match(r'^((?:\w+=\S+ )*)make (.*)$', plain)
    if make:
        plain = f'{make.group(1)}make -o setup PY={sys.executable} {make.group(2)}'
    for tool, extra in SHORT.items():
        if tool in plain:
            plain = plain.rstrip('&').rstrip() + extra + (' &' if plain.endswith('&') else '')
    return plain


BLOCKS = bash_blocks()


def test_the_readme_has_command_blocks_and_no_synopsis_in_them():
    assert len(BLOCKS) >= 8
    for line, lines in BLOCKS:
        if needs(lines):
            continue
        for command in commands(lines):
            if command.startswith('ros2 ') or line_needs(command):
                continue
            plain = command.split(' #', 1)[0]
            assert not PLACEHOLDER.search(plain), (
                f'README.md:{line}: {command!r} is a synopsis (placeholders or [options]), '
                f'not a command: put it in a ```text block')


@pytest.fixture(scope='module')
def scratch():
    shutil.rmtree(ROOT / 'build', ignore_errors=True)
    yield
    shutil.rmtree(ROOT / 'build', ignore_errors=True)


def _stop(proc, timeout=30):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return proc.returncode, out, err


def _start(command):
    return subprocess.Popen(['bash', '-c', command], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})


@pytest.mark.parametrize('line, lines', BLOCKS, ids=[f'README.md:{b[0]}' for b in BLOCKS])
def test_a_readme_block_runs_as_written(line, lines, scratch):
    why = needs(lines)
    if why:
        pytest.skip(f'README.md:{line}: needs {why} (says so in the block)')
    background = []
    ran = 0
    try:
        for command in commands(lines):
            where = f'README.md:{line}: {command}'
            if command.startswith('ros2 '):
                continue   # a ROS 2 install's command
            if re.match(r'^(PYTHON=\S+ )?make (test|check-registry|mutation)', command):
                continue   # the suite itself, or the maintainers' checks CI runs
            if line_needs(command):
                continue   # says what it needs: an opt-in download, the board, ...
            ran += 1
            run = prepared(command)
            if run.endswith('&'):
                proc = _start(run[:-1])
                background.append((where, proc))
                continue
            proc = _start(run)
            if RUNS_UNTIL_STOPPED.search(command.split(' #', 1)[0]):
                time.sleep(RUNNING_FOR)
                assert proc.poll() is None, (where, 'ended early', proc.communicate())
                code, out, err = _stop(proc)
                assert code in (0, 130, -signal.SIGINT), (where, code, out[-2000:], err[-2000:])
            else:
                try:
                    out, err = proc.communicate(timeout=600)
                except subprocess.TimeoutExpired:
                    _stop(proc)
                    raise AssertionError(f'{where}: still running after 600 s')
                code = proc.returncode
                assert code == 0, (where, code, out[-2000:], err[-2000:])
            assert 'Traceback' not in err, (where, err[-3000:])
        for where, proc in background:
            assert proc.poll() is None, (where, 'ended early', proc.communicate())
    finally:
        for where, proc in background:
            code, out, err = _stop(proc)
            assert code in (0, 130, -signal.SIGINT) and 'Traceback' not in err, \
                (where, code, err[-2000:])
    if not ran:
        pytest.skip(f'README.md:{line}: only commands of the suite itself or a ROS install')
