"""edge-classifier-eval and edge-classifier-quantize on small inputs (real models, real
photos): both layouts, float vs NV12 vs int8 columns, bad input reported, the rest run."""
import json
import shutil
import subprocess
import sys

import onnxruntime as ort

from helpers import tiny_config, write_params_file


def run(tool, *args):
    return subprocess.run([sys.executable, '-m', f'edge_classifier.tools.{tool}', *args],
                          capture_output=True, text=True, timeout=300)


def table(stdout):
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if len(cells) == 4 and cells[1].isdigit():
            rows[cells[0]] = (int(cells[1]), float(cells[2]), float(cells[3]))
    return rows


def test_val_label_layout_on_the_default_model(samples, tmp_path):
    for name in ('coffee', 'camera', 'chelsea'):
        shutil.copy(samples[name], tmp_path / f'{name}.png')
    (tmp_path / 'broken.jpg').write_text('not a photo')
    (tmp_path / 'val_label.txt').write_text(
        'coffee.png 967\ncamera.png 872\nchelsea.png 282\nbroken.jpg 1\nmissing.png 5\n')
    out = tmp_path / 'eval.json'
    proc = run('evaluate', str(tmp_path), '--json', str(out))
    assert proc.returncode == 0, proc.stderr
    rows = table(proc.stdout)
    assert rows['float RGB'] == (3, 100.0, 100.0) and rows['NV12'] == (3, 100.0, 100.0)
    assert 'names missing.png, which does not exist' in proc.stderr
    assert 'broken.jpg: not an image' in proc.stderr
    assert '2 item(s) skipped' in proc.stdout
    # (an int8 column follows when models/efficientnet_lite0.int8.onnx has been made)
    assert [r['path'] for r in json.loads(out.read_text())][:2] == ['float RGB', 'NV12']


def test_folder_per_class_layout_quantize_and_int8_column(samples, tmp_path, default_cfg):
    data = tmp_path / 'set'
    for folder, name in (('espresso', 'coffee'), ('872', 'camera'), ('tiger cat', 'chelsea'),
                         ('not-a-class', 'rocket')):
        (data / folder).mkdir(parents=True)
        shutil.copy(samples[name], data / folder / f'{name}.png')
    cfg = tiny_config(tmp_path, classes=1000, size=224)
    # the real ImageNet names, so folders can be named by class name
    shutil.copy(default_cfg.resolve(default_cfg.labels_path), tmp_path / 'labels.txt')
    model_yaml = write_params_file(cfg, tmp_path / 'tiny.yaml')
    proc = run('quantize', str(data), '--model', str(model_yaml))
    assert proc.returncode == 0, proc.stderr
    int8 = tmp_path / 'tiny.int8.onnx'
    meta = ort.InferenceSession(str(int8)).get_modelmeta().custom_metadata_map
    assert 'calibration images through NV12' in meta['edge_classifier.quantization']
    assert '7-bit weights' in meta['edge_classifier.quantization']
    assert '4 images' in proc.stdout
    # 7-bit weights: a uint8 x int8 pair sums to at most 2 * 255 * 64 = 32640, inside the
    # 16 bits ONNX Runtime's AVX2 kernels add into without VNNI: the same result anywhere
    assert 0 < int8_weight_magnitude(int8) <= 64
    proc = run('evaluate', str(data), '--model', str(model_yaml))
    assert proc.returncode == 0, proc.stderr
    rows = table(proc.stdout)
    assert set(rows) == {'float RGB', 'NV12', 'int8 NV12'}
    assert all(n == 3 for n, _, _ in rows.values())
    assert all(top1 <= top5 for _, top1, top5 in rows.values())
    assert 'not-a-class: folder name is neither a class index nor a class name' in proc.stderr
    assert 'UNTRAINED' in proc.stdout
    assert '# CPU: ' in proc.stdout and 'int8 kernels' in proc.stdout
    assert f'# int8 model: {int8} (int8 static (QDQ, 7-bit weights' in proc.stdout

    proc = run('quantize', str(data), '--model', str(model_yaml), '--full-range',
               '--out', str(tmp_path / 'full.onnx'))
    assert proc.returncode == 0, proc.stderr
    assert int8_weight_magnitude(tmp_path / 'full.onnx') > 64


def int8_weight_magnitude(path):
    """The largest |weight| among a QDQ model's int8 initializers."""
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper
    model = onnx.load(str(path))
    return max(int(np.abs(numpy_helper.to_array(t).astype(int)).max())
               for t in model.graph.initializer if t.data_type == TensorProto.INT8)


def test_bad_folders_are_clear_errors(tmp_path):
    letterbox = write_params_file(tiny_config(tmp_path, resize_mode='letterbox'),
                                  tmp_path / 'letterbox.yaml')
    proc = run('evaluate', str(tmp_path), '--model', str(letterbox))
    assert proc.returncode == 2 and 'not letterbox' in proc.stderr
    proc = run('evaluate', str(tmp_path / 'nope'))
    assert proc.returncode == 2 and 'does not exist' in proc.stderr
    proc = run('evaluate', str(tmp_path))
    assert proc.returncode == 2 and 'neither a val_label.txt nor one sub-folder' in proc.stderr
    proc = run('quantize', str(tmp_path / 'nope'))
    assert proc.returncode == 2 and 'calibration folder' in proc.stderr
    (tmp_path / 'notes.txt').write_text('x')
    proc = run('quantize', str(tmp_path))
    assert proc.returncode == 2 and 'no images' in proc.stderr


def test_val_label_takes_class_names_too_and_says_what_a_label_is(tmp_path):
    from edge_classifier.tools.evaluate import load_dataset
    for name in ('a.png', 'b.png', 'c.png'):
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'val_label.txt').write_text('a.png 967\nb.png tiger cat\nc.png no such class\n')
    names = [f'class{i}' for i in range(1000)]
    names[282] = 'tiger cat'
    items, problems = load_dataset(tmp_path, names)
    assert [(p.name, label) for p, label in items] == [('a.png', 967), ('b.png', 282)]
    (where, why), = problems
    assert where.endswith('val_label.txt:3')
    assert 'a class index (0..999) or a class name of the labels file' in why
