"""Per-model configuration: one YAML file per model under config/, in ROS 2 params-file
form (so a launch file hands it to the node unchanged), loadable without ROS.

    /**:
      ros__parameters:
        model_name: efficientnet_lite0
        onnx_path: efficientnet_lite0.onnx
        ...

Every key is validated against the parameter table (params.py: types, ranges, choices)
and the rules between keys below: unknown keys, wrong types and values outside the allowed
set raise ConfigError naming the file, the key and what is allowed.
"""
import dataclasses
import shlex
import shutil
import sys
from dataclasses import field
from pathlib import Path
from typing import List

import yaml

from . import resources
from .errors import ConfigError
from .params import BY_NAME, MODEL_KEYS, broken_model_rules


_TYPES = {'str': str, 'int': int, 'float': float, 'bool': bool, 'float[3]': List[float],
          'str[]': List[str]}


def _field(key):
    """The dataclass field of a model key: its type and default from the table's row."""
    param = BY_NAME[key]
    value = param.default
    default = field(default_factory=lambda: list(value)) if isinstance(value, list) \
        else field(default=value)
    return key, _TYPES[param.kind], default


class _ModelConfigMethods:
    """ModelConfig's behaviour; its fields are the table's model rows (below)."""

    # ---- paths -------------------------------------------------------------------------
    def models_directory(self):
        return resources.models_dir(self.models_dir or None)

    def resolve(self, value):
        """A config path as an absolute Path (relative ones against the models dir)."""
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.models_directory() / path
        return path

    def bpu_search_dirs(self):
        """Where a missing compiled model is looked for besides the models directory: the
        board's model directories for a relative bpu_path, nowhere for an absolute one."""
        return () if Path(self.bpu_path).expanduser().is_absolute() else \
            tuple(self.board_model_dirs)

    def bpu_model(self):
        """The compiled model's file and where it was found ('' when bpu_path is absolute or
        nowhere): a relative bpu_path in the models directory, else in each of
        board_model_dirs (the board's preinstalled models), else the models directory's path
        (missing: the backend says so, and where it looked)."""
        path = Path(self.bpu_path).expanduser()
        if path.is_absolute():
            return path, ''
        local = self.resolve(self.bpu_path)
        if local.is_file():
            return local, 'the models directory'
        for directory in self.bpu_search_dirs():
            candidate = Path(directory).expanduser() / path
            if candidate.is_file():
                return candidate, f'the board\'s models ({directory})'
        return local, ''

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
        """The command (or step) that makes the file under `key` exist, for error messages.
        It names the models directory this process looks in, so that it fixes this case
        wherever it is run from (a colcon install without --symlink-install looks in
        ~/.local/share, a source checkout's environment would write to its models/)."""
        python = sys.executable if shutil.which('python3') != sys.executable else 'python3'
        tool = (f'{shlex.quote(python)} -m edge_classifier.tools.models prepare '
                f'{shlex.quote(self.reference())} --models-dir '
                f'{shlex.quote(str(self.models_directory()))}')
        path = self.resolve(getattr(self, key))
        if key == 'bpu_path':
            hint = f'copy the RDK model zoo\'s compiled model to {path}'
            return hint + (f', or run `{tool} --download` where the network reaches the zoo'
                           if self.zoo_bin_url else '')
        if self.source == 'efficientnet_lite0':
            return f'run `{tool}`'
        if self.source.startswith('timm:'):
            zoo = [what for what, url in (('ONNX', self.zoo_onnx_url),
                                          ('compiled .bin', self.zoo_bin_url)) if url]
            board = (f'on the RDK X5, the zoo\'s compiled .bin ({self.bpu_path}: copy it into '
                     f'{self.models_directory()}' + (f', or `{tool} --download` where the '
                                                     f'network reaches the zoo (its '
                                                     f'{" and ".join(zoo)})' if zoo else '')
                     + '; `backend: auto` then uses the BPU)')
            return (f'run `{tool} --untrained` (the architecture with random weights, for '
                    f'speed work only; installs timm + torch once, ~5.7 GB), or copy a trained '
                    f'ONNX model to {path}; {board}')
        return f'copy the model to {path}'

    def replace(self, origin=None, **changes):
        """A validated copy with some keys changed (e.g. backend from the command line);
        `origin` names where the changes came from in an error (default: this config's)."""
        data = self.to_dict()
        data.update(changes)
        return from_dict(data, origin=origin or self.origin or 'overrides')

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != 'origin'}


ModelConfig = dataclasses.make_dataclass(
    'ModelConfig',
    [_field(key) for key in MODEL_KEYS]
    # Not a key: the file this config came from ('' for parameters/defaults).
    + [('origin', str, field(default='', compare=False, repr=False))],
    bases=(_ModelConfigMethods,))
ModelConfig.__module__ = __name__   # (make_dataclass's module= is Python 3.12+)
ModelConfig.__doc__ = (
    'Everything the pipeline needs to know about one model: one field per model key of the '
    'parameter table (params.py: what each does, its type and range), in the table\'s '
    'order; the defaults are those of the default model, EfficientNet-Lite0 '
    '(config/efficientnet_lite0.yaml).')
_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name != 'origin'}


def check_key(origin, key, value):
    """One key's value against the parameter table: converted, or ConfigError naming where
    it came from (`origin`), the key and what it accepts."""
    try:
        return BY_NAME[key].check(value)
    except ValueError as exc:
        raise ConfigError(f'{origin}: key {key!r}: {exc}') from None


def from_dict(data, origin='parameters'):
    """Validate a mapping of config keys; missing keys take the defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f'{origin}: expected a mapping of config keys, got {type(data).__name__}')
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f'{origin}: unknown key(s) {", ".join(map(repr, unknown))}; '
                          f'allowed keys: {", ".join(sorted(_FIELDS))}')
    values = {key: check_key(origin, key, value) for key, value in data.items()}
    cfg = ModelConfig(**values, origin=origin)
    _validate(cfg, origin)
    return cfg


def _validate(cfg, origin):
    """The rules between keys (params.broken_model_rules, beside the table): the first one
    `cfg` breaks, as a ConfigError naming where it came from and the key."""
    for key, message in broken_model_rules(cfg):
        raise ConfigError(f'{origin}: key {key!r}: {message}')


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
