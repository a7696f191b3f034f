"""Where the package's files live: configs, models, labels, sample photos.

Configs and launch files are found through the ament index (colcon install, or the
standalone venv) and fall back to the source tree. Models, labels and sample photos
are data that `make setup` / `python -m edge_classifier.tools.models prepare` write; they
live in a data root:

  1. $EDGE_CLASSIFIER_DATA if set;
  2. the source checkout (the directory holding package.xml next to this package) when
     running from one (the standalone environment installs the package editable);
  3. otherwise $XDG_DATA_HOME/edge_classifier (~/.local/share/edge_classifier).

models/ and samples/ are directories of that root; a config's relative paths resolve
against the models directory, which a config (`models_dir`), the CLI (`--models-dir`),
the node parameter or $EDGE_CLASSIFIER_MODELS_DIR can override.
"""
import os
from pathlib import Path

PACKAGE = 'edge_classifier'
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _is_source_checkout(root):
    xml = root / 'package.xml'
    return xml.is_file() and f'<name>{PACKAGE}</name>' in xml.read_text(errors='replace')


def source_root():
    """The source checkout this package runs from, or None (an installed package)."""
    return _SOURCE_ROOT if _is_source_checkout(_SOURCE_ROOT) else None


def share_dir():
    """The package's share directory (config/, launch/), or the source tree."""
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, KeyError, ValueError, LookupError):
            pass
    except ImportError:
        pass
    if _is_source_checkout(_SOURCE_ROOT):
        return _SOURCE_ROOT
    raise FileNotFoundError(
        f'cannot find the {PACKAGE} share directory: source it (source install/setup.bash) '
        f'or run inside the standalone environment (make setup)')


def config_dir():
    return share_dir() / 'config'


def data_root():
    env = os.environ.get('EDGE_CLASSIFIER_DATA')
    if env:
        return Path(env).expanduser()
    if _is_source_checkout(_SOURCE_ROOT):
        return _SOURCE_ROOT
    xdg = os.environ.get('XDG_DATA_HOME') or os.path.join(os.path.expanduser('~'), '.local',
                                                          'share')
    return Path(xdg) / PACKAGE


def models_dir(override=None):
    if override:
        return Path(override).expanduser()
    env = os.environ.get('EDGE_CLASSIFIER_MODELS_DIR')
    if env:
        return Path(env).expanduser()
    return data_root() / 'models'


def samples_dir():
    return data_root() / 'samples'


def sample_images():
    """The bundled sample photos (written by make setup), sorted by name."""
    folder = samples_dir()
    return sorted(p for p in folder.glob('*') if p.suffix.lower() in ('.png', '.jpg', '.jpeg'))


def available_models():
    """Names of the per-model configs shipped in config/."""
    return sorted(p.stem for p in config_dir().glob('*.yaml'))
