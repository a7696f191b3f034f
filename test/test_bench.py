"""The benchmark command runs end to end on a tiny real model (speed is not asserted)."""
import json
import subprocess
import sys

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
