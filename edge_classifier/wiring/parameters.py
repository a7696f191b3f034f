"""The node's parameters: declared from the parameter table (params.py) with descriptors
that say what each does, its unit and range; read into a ModelConfig (`cfg`) and the I/O
settings (`io`); changed at run time where the table allows.

classifier_node reads them at construction, and the parameters it cannot apply while
running are read-only. The managed node (nav2's convention) reads them on configure: while
unconfigured every parameter can be set (a bad `model` is fixed with `ros2 param set`,
then configure again); once configured, only the run-time ones change.

A model key the user did not set takes its value from the model YAML that `model` names,
read again on every configure. An error names where the bad value came from: the YAML
file, -p / --params-file, or `ros2 param set`.
"""
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterValueException, ParameterUninitializedException
from rclpy.parameter import Parameter

from .. import config as model_config
from ..config import ConfigError
from ..errors import EdgeClassifierError, StartupError
from ..params import (BY_NAME, INT_MAX, MODEL_KEYS, NODE_PARAMS, RUNTIME_KEYS,
                      broken_topic_rules)
from ..ros_main import descriptor_of, refuse_unknown_parameters

READ_ONLY = 'Read-only: fixed at startup; restart the node to change it.'
MANAGED = ('Fixed while the node is configured: deactivate and clean it up, set this, '
           'configure again.')
CLASS_NAMES = 'class_names'
IO_KEYS = tuple(p.name for p in NODE_PARAMS if not p.model)


class NodeParameters:
    """Declares every node parameter of the table on `node` (managed: a lifecycle node).

    read() -> (cfg, io), checked; `configured` (set by the node) fixes the startup ones;
    on_change(cfg, io) is called on a run-time change (top_k, score_threshold, max_rate,
    classes, class_thresholds) while a config is in use, before the change is accepted:
    an EdgeClassifierError it raises (a class the labels do not have) refuses the change
    with its message.
    """

    def __init__(self, node, managed=False, on_change=None):
        self.node = node
        self.managed = managed
        self.configured = False
        self.cfg = None
        self.io = None
        self.on_change = on_change or (lambda cfg, io: None)
        self._refreshing = False
        self._errors = {}                    # name -> a bad startup value, reported on read()
        self.user_set = {name for name in self._overrides() if name in BY_NAME}
        model = self._override('model', BY_NAME['model'].default)
        self.yaml, self.yaml_error = self._load_yaml(model)
        for param in NODE_PARAMS:
            self._declare(param)
        self._reject_unknown_parameters()
        node.add_on_set_parameters_callback(self._on_set_parameters)

    # ---- where values come from ---------------------------------------------------------
    def _overrides(self):
        """Values given with -p or --params-file (rclpy keeps them here)."""
        return getattr(self.node, '_parameter_overrides', {})

    def _override(self, name, default):
        value = self._overrides().get(name)
        return default if value is None else value.value

    def where(self, name):
        """Where a parameter's value came from, for error messages."""
        fqn = self.node.get_fully_qualified_name()
        if name in self._overrides() and name in self.user_set:
            return f'set on {fqn} with -p or --params-file'
        if name in self.user_set:
            return f'set on {fqn} with ros2 param set'
        if BY_NAME[name].model and self.yaml is not None:
            return self.yaml.origin
        return f'the default of {fqn}'

    def _load_yaml(self, model):
        try:
            return model_config.load_config(BY_NAME['model'].check(model)), None
        except (ConfigError, ValueError) as exc:
            return None, f'parameter model ({self.where("model")}): {exc}'

    # ---- declare ------------------------------------------------------------------------
    def _declare(self, param):
        default = param.default
        if param.model and self.yaml is not None:
            default = getattr(self.yaml, param.name)
        read_only = not self.managed and not param.runtime
        high = None
        if param.name == 'top_k':   # the range's top depends on the model
            high = self.yaml.num_classes if self.yaml is not None else INT_MAX
        descriptor = descriptor_of(param, read_only, MANAGED if self.managed else READ_ONLY,
                                   high)
        value = Parameter.Type.STRING_ARRAY if default == [] else default
        try:
            self.node.declare_parameter(param.name, value, descriptor)
        except InvalidParameterValueException as exc:
            message = f'parameter {param.name} ({self.where(param.name)}): {exc}'
            if not self.managed:
                raise StartupError(message) from exc
            # A managed node stays up: the default is kept, the error reported on configure
            # until the parameter is set right.
            self._errors[param.name] = message
            self.node.declare_parameter(param.name, value, descriptor, ignore_override=True)

    def _reject_unknown_parameters(self):
        """A params file key this node does not know is a typo: fail, do not ignore it."""
        refuse_unknown_parameters(self.node, ignore=(CLASS_NAMES,))

    # ---- read ---------------------------------------------------------------------------
    def _raw(self, name):
        """The parameter's value; None for a list declared empty (rcl cannot type `[]`, so
        it is declared as an uninitialised string array)."""
        try:
            return self.node.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    def _value(self, name):
        param = BY_NAME[name]
        try:
            return param.check(self._raw(name))
        except ValueError as exc:
            raise StartupError(f'parameter {name} ({self.where(name)}): {exc}') from None

    def read(self):
        """(cfg, io) from the parameters as they are now, or StartupError naming the
        parameter, where its value came from and what it accepts."""
        if self._errors:
            raise StartupError(next(iter(self._errors.values())))
        self.yaml, self.yaml_error = self._load_yaml(self.node.get_parameter('model').value)
        if self.yaml_error:
            raise StartupError(self.yaml_error)
        values, refresh = {}, []
        for key in MODEL_KEYS:
            from_yaml = getattr(self.yaml, key)
            if key not in self.user_set:
                values[key] = from_yaml
                if self._raw(key) != from_yaml:
                    refresh.append(Parameter(key, value=from_yaml))
            else:
                values[key] = self._value(key)
        self._refresh(refresh)
        mine = sorted(k for k in MODEL_KEYS if k in self.user_set)
        origin = self.yaml.origin + (f' with {", ".join(mine)} set on '
                                     f'{self.node.get_fully_qualified_name()}' if mine else '')
        cfg = model_config.from_dict(values, origin=origin)   # a ConfigError names the key
        io = {key: self._value(key) for key in IO_KEYS if key != 'model'}
        for key, expected, why in broken_topic_rules(
                io['image_topics'], io['compressed_topics'], io['detection_topics'],
                io['output_topic'], io['detections_output_topic']):
            raise StartupError(f'parameter {key} ({self.where(key)}): expected {expected}{why}')
        self.cfg, self.io = cfg, io
        return cfg, io

    def _refresh(self, params):
        """Set parameters to values of the node's own (the model YAML's, the labels)."""
        if not params:
            return
        self._refreshing = True
        try:
            self.node.set_parameters(params)
        finally:
            self._refreshing = False

    def publish_class_names(self, labels):
        """The label database as parameter class_names (VisionInfo.database_location)."""
        if self.node.has_parameter(CLASS_NAMES):
            self._refresh([Parameter(CLASS_NAMES, value=list(labels))])
            return
        self._refreshing = True       # declaring runs the set-parameters callbacks too
        try:
            self.node.declare_parameter(CLASS_NAMES, list(labels), ParameterDescriptor(
                description='Class names by class_id (the label database, from labels_path). '
                            'Set by the node.', read_only=not self.managed))
        finally:
            self._refreshing = False

    # ---- run-time changes -----------------------------------------------------------------
    def _on_set_parameters(self, params):
        """Checks every change against the table; applies top_k and score_threshold
        together (a frame sees all of a change or none)."""
        if self._refreshing:
            return SetParametersResult(successful=True)
        fqn = self.node.get_fully_qualified_name()
        where = f'ros2 param set on {fqn}'
        checked = {}
        for p in params:
            if p.name == CLASS_NAMES:
                return _refused(f'parameter {CLASS_NAMES} comes from labels_path: set that')
            param = BY_NAME.get(p.name)
            if param is None:
                continue
            if self.configured and not param.runtime:
                return _refused(f'parameter {p.name}: {MANAGED}')
            try:
                checked[p.name] = param.check(p.value)
            except ValueError as exc:
                return _refused(f'parameter {p.name} ({where}): {exc}')
        runtime = {k: v for k, v in checked.items() if k in RUNTIME_KEYS}
        if runtime and self.cfg is not None and self.configured:
            model = {k: v for k, v in runtime.items() if BY_NAME[k].model}
            try:
                cfg = self.cfg.replace(origin=where, **model) if model else self.cfg
            except ConfigError as exc:   # names where the value came from
                return _refused(str(exc))
            cfg.origin = self.cfg.origin
            io = {**self.io, **{k: v for k, v in runtime.items() if k not in model}}
            try:
                self.on_change(cfg, io)     # refused here if it cannot be applied
            except EdgeClassifierError as exc:
                return _refused(f'{exc} ({where})')
            self.cfg, self.io = cfg, io
            self.node.get_logger().info('now ' + ', '.join(f'{k}={v}'
                                                           for k, v in runtime.items()))
        self.user_set.update(checked)
        for name in checked:
            self._errors.pop(name, None)
        return SetParametersResult(successful=True)


def _refused(reason):
    return SetParametersResult(successful=False, reason=reason)


def help_text(label, description):
    """--help of a classifier executable: the parameter table, as `ros2 param describe`
    would show each."""
    from ..ros_main import usage
    return usage(label, description, [(p.name, 'from the model YAML' if p.model else
                                       repr(p.default), p.describe()) for p in NODE_PARAMS])
