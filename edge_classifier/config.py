"""Per-model configuration: one YAML file per model under config/, in ROS 2 params-file
form (so a launch file hands it to the node unchanged), loadable without ROS.

    /**:
      ros__parameters:
        model_name: efficientnet_lite0
        onnx_path: efficientnet_lite0.onnx
        ...

Every key is validated: unknown keys, wrong types and values outside the allowed set
raise ConfigError naming the file, the key and what is allowed.
"""
import dataclasses
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import yaml

from . import resources
from .errors import EdgeClassifierError

RESIZE_MODES = ('resize_crop', 'letterbox', 'stretch')
CHANNEL_ORDERS = ('rgb', 'bgr')
BACKENDS = ('auto', 'onnxruntime', 'bpu')
GRAPH_OPTIMIZATIONS = ('disable', 'basic', 'extended', 'all')
ORT_SPINNING = ('never', 'in_run', 'always')
# Input QoS reliability of the node (its `reliability` parameter and launch argument).
RELIABILITIES = ('auto', 'reliable', 'best_effort')


class ConfigError(EdgeClassifierError, ValueError):
    """A model config (file or parameters) is missing, malformed or invalid."""


@dataclass
class ModelConfig:
    """Everything the pipeline needs to know about one model.

    Defaults are those of the default model, EfficientNet-Lite0 (config/efficientnet_lite0.yaml).
    """
    model_name: str = 'efficientnet_lite0'
    # Model files; relative paths resolve against models_dir.
    onnx_path: str = 'efficientnet_lite0.onnx'
    bpu_path: str = 'efficientnet_lite0_224x224_nv12.bin'
    labels_path: str = 'imagenet1k_labels.txt'
    models_dir: str = ''
    # Input geometry (NV12 needs even sizes).
    input_width: int = 224
    input_height: int = 224
    resize_mode: str = 'resize_crop'
    resize_short_side: int = 256
    # Float path (ONNX Runtime): NV12 -> channel_order -> (x - mean) / std, NCHW float32.
    # On the BPU, mean/std are compiled into the model.
    mean: List[float] = field(default_factory=lambda: [127.0, 127.0, 127.0])
    std: List[float] = field(default_factory=lambda: [128.0, 128.0, 128.0])
    channel_order: str = 'rgb'
    # Output
    num_classes: int = 1000
    softmax: bool = True
    top_k: int = 5
    score_threshold: float = 0.0
    # Execution
    backend: str = 'auto'
    workers: int = 2
    # ONNX Runtime threads per inference (0: one per core) and whether they spin waiting
    # for work: in_run = only while an inference runs (fast hand-offs inside it, no CPU
    # burnt between frames), always = ORT's default (keeps spinning after a run), never.
    # ort_adaptive_threads: an inference that starts while another one runs (several
    # workers under load) uses one thread (a second, single-threaded session), so sparse
    # frames get every core and a flood does not oversubscribe them.
    ort_intra_op_threads: int = 0
    ort_adaptive_threads: bool = True
    ort_spinning: str = 'in_run'
    ort_graph_optimization: str = 'all'
    bpu_core_id: int = 0
    bpu_priority: int = 0
    # Where the model comes from, for `edge_classifier.tools.models prepare`.
    source: str = ''
    zoo_onnx_url: str = ''
    zoo_bin_url: str = ''
    notes: str = ''

    # Not a key: the file this config came from ('' for parameters/defaults).
    origin: str = field(default='', compare=False, repr=False)

    # ---- paths -------------------------------------------------------------------------
    def models_directory(self):
        return resources.models_dir(self.models_dir or None)

    def resolve(self, value):
        """A config path as an absolute Path (relative ones against the models dir)."""
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.models_directory() / path
        return path

    def reference(self):
        """How `load_config` finds this config again: its name if shipped, else its path."""
        path = Path(self.origin) if self.origin.endswith(('.yaml', '.yml')) else None
        if path is None:
            return self.model_name
        try:
            if path.resolve() == (resources.config_dir() / path.name).resolve():
                return path.stem
        except FileNotFoundError:
            pass
        return str(path)

    def prepare_hint(self, key):
        """The command (or step) that makes the file under `key` exist, for error messages."""
        python = sys.executable if shutil.which('python3') != sys.executable else 'python3'
        tool = f'{python} -m edge_classifier.tools.models prepare {self.reference()}'
        if self.models_dir:
            tool += f' --models-dir {self.models_dir}'
        path = self.resolve(getattr(self, key))
        if key == 'bpu_path':
            hint = f'copy the RDK model zoo\'s compiled model to {path}'
            return hint + (f', or run `{tool} --download` where the network reaches the zoo'
                           if self.zoo_bin_url else '')
        if self.source == 'efficientnet_lite0':
            return f'run `{tool}`'
        if self.source.startswith('timm:'):
            return (f'run `{tool} --untrained` (the architecture with random weights, for speed '
                    f'work; installs timm + torch once, ~5.7 GB), or copy a trained ONNX model '
                    f'to {path}; on the RDK X5 use the zoo\'s .bin (bpu_path)')
        return f'copy the model to {path}'

    def replace(self, **changes):
        """A validated copy with some keys changed (e.g. backend from the command line)."""
        data = self.to_dict()
        data.update(changes)
        return from_dict(data, origin=self.origin or 'overrides')

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != 'origin'}


_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name != 'origin'}
_DEFAULTS = ModelConfig()
_CHOICES = {'resize_mode': RESIZE_MODES, 'channel_order': CHANNEL_ORDERS, 'backend': BACKENDS,
            'ort_graph_optimization': GRAPH_OPTIMIZATIONS, 'ort_spinning': ORT_SPINNING}


def _check_type(origin, key, value):
    default = getattr(_DEFAULTS, key)
    where = f'{origin}: key {key!r}'
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true or false, got {value!r}')
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where}: expected an integer, got {value!r}')
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}: expected a number, got {value!r}')
        return float(value)
    if isinstance(default, list):
        if (not isinstance(value, (list, tuple)) or len(value) != 3 or
                any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
            raise ConfigError(f'{where}: expected a list of 3 numbers (one per channel), '
                              f'got {value!r}')
        return [float(v) for v in value]
    if value is None:
        value = ''
    if not isinstance(value, str):
        raise ConfigError(f'{where}: expected a string, got {value!r}')
    return value


def from_dict(data, origin='parameters'):
    """Validate a mapping of config keys; missing keys take the defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f'{origin}: expected a mapping of config keys, got {type(data).__name__}')
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f'{origin}: unknown key(s) {", ".join(map(repr, unknown))}; '
                          f'allowed keys: {", ".join(sorted(_FIELDS))}')
    values = {key: _check_type(origin, key, value) for key, value in data.items()}
    cfg = ModelConfig(**values, origin=origin)
    _validate(cfg, origin)
    return cfg


def _validate(cfg, origin):
    def fail(key, message):
        raise ConfigError(f'{origin}: key {key!r}: {message}')

    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            fail(key, f'{getattr(cfg, key)!r} is not one of {", ".join(choices)}')
    for key in ('input_width', 'input_height'):
        value = getattr(cfg, key)
        if value <= 0 or value % 2:
            fail(key, f'must be a positive even number (NV12 needs even sizes), got {value}')
    if cfg.resize_mode == 'resize_crop' and cfg.resize_short_side and \
            cfg.resize_short_side < max(cfg.input_width, cfg.input_height):
        fail('resize_short_side', f'{cfg.resize_short_side} is smaller than the input size '
             f'{cfg.input_width}x{cfg.input_height}; use 0 for "crop the centre square"')
    if cfg.resize_short_side < 0:
        fail('resize_short_side', 'must be >= 0')
    if any(s == 0 for s in cfg.std):
        fail('std', f'must not contain 0, got {cfg.std}')
    if cfg.num_classes < 1:
        fail('num_classes', f'must be >= 1, got {cfg.num_classes}')
    if not 1 <= cfg.top_k <= cfg.num_classes:
        fail('top_k', f'must be between 1 and num_classes ({cfg.num_classes}), got {cfg.top_k}')
    if not 0.0 <= cfg.score_threshold <= 1.0:
        fail('score_threshold', f'must be within [0, 1], got {cfg.score_threshold}')
    if not 1 <= cfg.workers <= 64:
        fail('workers', f'must be between 1 and 64, got {cfg.workers}')
    if cfg.ort_intra_op_threads < 0:
        fail('ort_intra_op_threads', 'must be >= 0 (0 lets ONNX Runtime choose)')
    if not 0 <= cfg.bpu_priority <= 255:
        fail('bpu_priority', f'must be within 0..255, got {cfg.bpu_priority}')
    if cfg.bpu_core_id < 0:
        fail('bpu_core_id', 'must be >= 0 (0 = any core)')
    if not cfg.model_name:
        fail('model_name', 'must not be empty')


def load_config(name_or_path):
    """Load a model config by name (config/<name>.yaml) or by path to a YAML file."""
    text = str(name_or_path)
    looks_like_path = text.endswith(('.yaml', '.yml')) or '/' in text or '\\' in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f'model config {path} does not exist; give a path to a YAML file '
                              f'or one of the model names: {", ".join(_available())}')
    else:
        path = resources.config_dir() / f'{text}.yaml'
        if not path.is_file():
            raise ConfigError(f'unknown model {text!r} (no {path}); available models: '
                              f'{", ".join(_available())}')
    return load_file(path)


def _available():
    try:
        return resources.available_models() or ['(none found)']
    except FileNotFoundError as exc:
        return [f'(none: {exc})']


def load_file(path):
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f'cannot read model config {path}: {exc.strerror}') from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        raise ConfigError(f'{path}: not valid YAML{where}: '
                          f'{getattr(exc, "problem", None) or exc}') from exc
    return from_dict(params_from_document(doc, path), origin=str(path))


def params_from_document(doc, origin):
    """The ros__parameters mapping of a ROS 2 params file (one node entry)."""
    hint = ('expected the ROS 2 params-file form "/**: {ros__parameters: {key: value}}"')
    if not isinstance(doc, dict) or len(doc) != 1:
        raise ConfigError(f'{origin}: {hint}')
    (node_name, body), = doc.items()
    if not isinstance(body, dict) or set(body) != {'ros__parameters'}:
        raise ConfigError(f'{origin}: under {node_name!r}: {hint}')
    params = body['ros__parameters']
    if not isinstance(params, dict):
        raise ConfigError(f'{origin}: ros__parameters must be a mapping of config keys')
    return params
