"""The benchmark command runs end to end on a tiny real model (speed is not asserted)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_classifier.tools.node_bench import StandIn

from helpers import tiny_config, write_params_file
from ros_helpers import wait_for


def test_bench_prints_bare_vs_pipeline_and_nv12_tables(tmp_path):
    path = write_params_file(tiny_config(tmp_path), tmp_path / 'tiny.yaml')
    out = tmp_path / 'bench.json'
    proc = subprocess.run([sys.executable, '-m', 'edge_classifier.tools.bench', '--model',
                           str(path), '--workers', '1,2', '--seconds', '0.6', '--rounds', '2',
                           '--json', str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith('| tiny')]
    assert len(table) == 3 and table[0].startswith('| tiny (untrained) | 1 |')
    assert table[1].startswith('| tiny (untrained) | 2 |')
    assert 'RDK bgr2nv12_opencv' in proc.stdout and 'x faster' in proc.stdout
    summary = [line for line in proc.stdout.splitlines() if line.startswith('| tiny')][-1]
    assert summary.startswith('| tiny (untrained) | 32x32 | 10 | 0.00 |')  # 40 parameters
    rows = json.loads(out.read_text())
    assert {(r['workers'], r['mode']) for r in rows} == {(1, 'bare'), (1, 'pipeline'),
                                                         (2, 'bare'), (2, 'pipeline')}
    for row in rows:
        assert set(row) == {'model', 'workers', 'mode', 'fps', 'latency_ms_p50',
                            'latency_ms_p99'}
        assert row['fps'] > 0 and row['latency_ms_p99'] >= row['latency_ms_p50'] > 0


def test_bench_runs_the_bpu_backend_as_on_the_board(tmp_path):
    """--backend bpu: the board's path, here on the fake hobot_dnn with node_bench's 2 ms
    stand-in that uses no CPU (as the BPU does)."""
    cfg = tiny_config(tmp_path)
    stand_in = StandIn(delay_ms=2.0, cfg=cfg)
    path = write_params_file(cfg.replace(bpu_path=str(stand_in.bin), model_name='stand_in'),
                             tmp_path / 'stand_in.yaml')
    proc = subprocess.run([sys.executable, '-m', 'edge_classifier.tools.bench', '--backend',
                           'bpu', '--model', str(path), '--workers', '1', '--seconds', '0.6',
                           '--rounds', '2'], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **stand_in.env()})
    assert proc.returncode == 0, proc.stderr
    assert 'backend bpu' in proc.stdout.splitlines()[0]
    row = next(line for line in proc.stdout.splitlines() if line.startswith('| stand_in | 1 |'))
    bare_p50 = float(row.split('|')[3])
    assert 2.0 <= bare_p50 < 50, row  # the stand-in's 2 ms, not an ONNX Runtime run


def test_two_stage_bench_prints_loop_vs_pipeline_per_box_count(tmp_path, default_cfg):
    out = tmp_path / 'two_stage.json'
    proc = subprocess.run([sys.executable, '-m', 'edge_classifier.tools.bench', '--two-stage',
                           '--boxes', '1,4', '--seconds', '0.6', '--rounds', '2', '--json',
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines()
             if line.startswith('| BPU stand-in') or line.startswith('| efficientnet')]
    assert [line.split(' | ')[1:3] for line in table] == [['2', '1'], ['2', '4']] * 2
    rows = json.loads(out.read_text())
    assert len(rows) == 4
    for row in rows:
        assert row['loop_boxes_per_s'] > 0 and row['pipeline_boxes_per_s'] > 0
        assert row['pipeline_frame_ms_p50'] > 0
    stand_in = [r for r in rows if r['model'].startswith('BPU stand-in')]
    # 2 ms per box on the stand-in: a frame of 4 boxes in a loop takes at least 8 ms
    assert stand_in[1]['loop_frame_ms_p50'] >= 8.0


def test_node_bench_measures_the_node_with_and_without_a_web_viewer():
    proc = subprocess.run([sys.executable, '-m', 'edge_classifier.tools.node_bench', '--cases',
                           'classifier_node', '--rates', '10', '--seconds', '3', '--rounds',
                           '1', '--cameras-seconds', '0', '--web'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(' | ') for line in proc.stdout.splitlines()
            if line.startswith('| 10 Hz')]
    assert [r[1] for r in rows] == ['classifier_node',
                                    'classifier_node + web_view, a browser watching']
    for row in rows:
        assert float(row[2]) > 5          # classified fps of a 10 Hz camera
    assert float(rows[1][6].rstrip(' |')) > 0   # web_view's CPU per frame


def _children(pid):
    found = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _in_session(sid):
    """Processes of session `sid` (what a tool started, even once it is gone)."""
    found = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != 'Z':
            found.append(int(stat.parent.name))
    return found


def _interrupt_when(argv, marker, sig=signal.SIGINT, delay=0.0):
    """Run a tool (a session of its own), send `sig` to it alone once a stdout line starts
    with `marker` (then `delay` s): (exit code, stdout, stderr, the child processes it had
    then)."""
    proc = subprocess.Popen([sys.executable, '-m', *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, children = [], []
    try:
        for line in proc.stdout:
            out.append(line)
            if line.startswith(marker):
                time.sleep(delay)
                children = _children(proc.pid)
                proc.send_signal(sig)
                break
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, ''.join(out) + rest, err, children, proc.pid


@pytest.mark.parametrize('marker, delay, sig, codes', [
    ('# edge_classifier benchmark', 0.0, signal.SIGINT, (130,)),     # loading the model
    ('| efficientnet_lite0 | 1 |', 0.5, signal.SIGINT, (130,)),      # measuring
    ('| efficientnet_lite0 | 1 |', 0.5, signal.SIGTERM, (143,)),
    ('| model | size |', 0.0, signal.SIGINT, (0, 130)),               # NV12, results
], ids=['loading', 'measuring', 'sigterm', 'writing'])
def test_ctrl_c_ends_the_bench_cleanly_in_any_phase(marker, delay, sig, codes, tmp_path):
    code, out, err, _, _ = _interrupt_when(
        ['edge_classifier.tools.bench', '--workers', '1,2', '--seconds', '3', '--rounds', '2',
         '--json', str(tmp_path / 'b.json')], marker, sig, delay)
    assert code in codes, out + err
    assert 'Traceback' not in err and 'terminate called' not in err, err
    if code:
        assert err.strip().endswith('edge-classifier-bench: interrupted'), err


@pytest.mark.parametrize('delay, sig, code', [
    (0.3, signal.SIGINT, 130),    # starting its processes
    (3.0, signal.SIGINT, 130),    # measuring
    (3.0, signal.SIGTERM, 143),
], ids=['starting', 'measuring', 'sigterm'])
def test_ctrl_c_ends_node_bench_cleanly_and_stops_its_processes(delay, sig, code):
    got, out, err, children, sid = _interrupt_when(
        ['edge_classifier.tools.node_bench', '--cases', 'floor,classifier_node', '--rates',
         '30', '--seconds', '4', '--rounds', '2', '--cameras-seconds', '0'],
        '# node benchmark', sig, delay)
    assert got == code, out + err
    assert 'Traceback' not in err, err
    assert err.strip().endswith('node_bench: interrupted'), err
    if delay > 1:
        assert children, 'no camera or node was running when interrupted'
    # nothing it started outlives it (its session: the processes it started, even those
    # started after the signal and orphaned)
    assert wait_for(lambda: not _in_session(sid), 15), \
        f'processes node_bench started outlived it: {_in_session(sid)}'


def test_what_node_bench_started_ends_even_when_node_bench_is_killed():
    """kill -9 (a CI timeout, an OOM kill): the cameras and nodes it started end with it."""
    code, out, err, children, sid = _interrupt_when(
        ['edge_classifier.tools.node_bench', '--cases', 'classifier_node', '--rates', '30',
         '--seconds', '4', '--rounds', '2', '--cameras-seconds', '0'],
        '# node benchmark', signal.SIGKILL, 3.0)
    assert code == -signal.SIGKILL
    assert children, 'nothing was running when it was killed'
    assert wait_for(lambda: not _in_session(sid), 20), \
        f'processes outlived a killed node_bench: {_in_session(sid)}'


def test_node_bench_measures_what_max_rate_saves():
    proc = subprocess.run([sys.executable, '-m', 'edge_classifier.tools.node_bench', '--cases',
                           'classifier_node', '--rates', '30', '--seconds', '4', '--rounds',
                           '1', '--cameras-seconds', '0', '--max-rate', '5'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r[1]: r for r in (line.split(' | ') for line in proc.stdout.splitlines()
                              if line.startswith('| 30 Hz'))}
    assert list(rows) == ['classifier_node', 'classifier_node max_rate:=5']
    budget = rows['classifier_node max_rate:=5']
    assert 3.5 <= float(budget[2]) <= 6.0, budget          # about 5 results a second
    cpu = {name: float(row[-1].rstrip(' |')) for name, row in rows.items()}
    assert cpu['classifier_node max_rate:=5'] < cpu['classifier_node'], cpu
