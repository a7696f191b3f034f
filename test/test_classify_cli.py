"""python -m edge_classifier.classify: JSON lines through the node's path."""
import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, '-m', 'edge_classifier.classify', *args],
                          capture_output=True, text=True, timeout=120)


def test_json_line_per_image_and_bad_images_reported(samples, tmp_path):
    bad = tmp_path / 'notes.png'
    bad.write_text('not a photo')
    proc = run(str(samples['chelsea']), str(bad), str(samples['coffee']), '--top-k', '3')
    assert proc.returncode == 2, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line['image'] for line in lines] == [str(samples['chelsea']), str(bad),
                                                 str(samples['coffee'])]
    cat = lines[0]['results']
    assert len(cat) == 3 and cat[0]['class_id'] in {'281', '282', '283', '284', '285'}
    assert set(cat[0]) == {'class_id', 'class_name', 'score'}
    assert 'not an image' in lines[1]['error']
    assert lines[2]['results'][0] == {'class_id': '967', 'class_name': 'espresso',
                                      'score': lines[2]['results'][0]['score']}


def test_model_by_yaml_path_and_backend_override(samples, default_cfg):
    proc = run('--model', default_cfg.origin, '--backend', 'onnxruntime', str(samples['camera']))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)['results'][0]['class_name'] == 'tripod'


def test_unknown_model_and_missing_model_file_are_clear(samples, tmp_path):
    proc = run('--model', 'resnet9000', str(samples['camera']))
    assert proc.returncode == 2 and "unknown model 'resnet9000'" in proc.stderr
    proc = run('--model', 'mobilenetv3', '--models-dir', str(tmp_path), str(samples['camera']))
    assert proc.returncode == 2
    assert str(tmp_path / 'mobilenetv3.onnx') in proc.stderr
    proc = run('--backend', 'bpu', str(samples['camera']))
    assert proc.returncode == 2 and 'hobot_dnn' in proc.stderr


def test_missing_files_directories_and_a_bad_flag_are_clear_errors(samples, tmp_path):
    """Never a traceback: each unreadable path gets its error line, the rest classified."""
    proc = run(str(tmp_path / 'nope.jpg'), str(tmp_path), str(samples['coffee']))
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]['error'] == f'{tmp_path / "nope.jpg"}: no such file'
    assert lines[1]['error'] == f'{tmp_path}: a directory, not an image file'
    assert lines[2]['results'][0]['class_name'] == 'espresso'
    proc = run('--top-k', '0', str(samples['coffee']))
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert '--top-k: expected an integer from 1' in proc.stderr, proc.stderr
    assert '.yaml' not in proc.stderr   # the flag is to blame, not the model's file
