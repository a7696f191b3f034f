"""The benchmark command runs end to end on a tiny real model (speed is not asserted)."""
import json
import os
import subprocess
import sys

from edge_classifier.tools.node_bench import StandIn

from helpers import tiny_config, write_params_file


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
