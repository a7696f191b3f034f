"""The node's parameters over real DDS, as `ros2 param` and `ros2 lifecycle` see them:
descriptions from the one table, errors that blame the right origin, a managed node that
is fixed by setting a parameter (no restart), one log line per transition, diagnostics
named by the node's fully qualified name."""
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters

from edge_classifier.params import BY_NAME, NODE_PARAMS
from edge_classifier.wiring.parameters import MANAGED, READ_ONLY

from helpers import write_params_file
from ros_helpers import Managed, ros_process, stop, wait_for


CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config'   # the files this repository ships


def _value(value):
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)


def set_param(ros, node, name, value):
    """What `ros2 param set <node> <name> <value>` does: one SetParameters call."""
    request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=_value(value))])
    return ros.call(SetParameters, f'{node}/set_parameters', request).results[0]


def get_params(ros, node, names, timeout=20.0):
    values = ros.call(GetParameters, f'{node}/get_parameters',
                      GetParameters.Request(names=names), timeout=timeout).values
    return dict(zip(names, values))


def test_every_parameter_describes_itself_from_the_table_and_errors_blame_the_origin(ros):
    node = '/robot1/edge_classifier'
    proc = ros_process('edge_classifier.node', {'workers': 1, 'image_topics': ['cam']},
                       ros_args=('-r', '__ns:=/robot1'))
    try:
        listed = ros.call(ListParameters, f'{node}/list_parameters',
                          ListParameters.Request()).result.names
        ours = [p.name for p in NODE_PARAMS]
        assert set(ours) <= set(listed)
        described = ros.call(DescribeParameters, f'{node}/describe_parameters',
                             DescribeParameters.Request(names=ours)).descriptors
        for d in described:
            param = BY_NAME[d.name]
            assert d.description == param.describe(READ_ONLY), d.name
            assert 'model config key' not in d.description
            assert d.read_only == (not param.runtime), d.name

        # a value given at run time is blamed on ros2 param set, not on the YAML
        refused = set_param(ros, node, 'top_k', 'five')
        assert not refused.successful
        assert refused.reason == ("parameter top_k (ros2 param set on "
                                  "/robot1/edge_classifier): expected an integer from 1 to "
                                  "num_classes, got 'five'"), refused.reason
        refused = set_param(ros, node, 'top_k', 1001)
        assert not refused.successful and 'efficientnet_lite0.yaml' not in refused.reason
        assert set_param(ros, node, 'top_k', 3).successful
        assert get_params(ros, node, ['top_k'])['top_k'].integer_value == 3
    finally:
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err
    assert 'ready in' in err and 'classifying /robot1/cam -> /robot1/classification' in err


@pytest.mark.parametrize('params, words', [
    ({'workers': 'two'}, ["parameter workers (set on /edge_classifier with -p or "
                          "--params-file): expected an integer from 1 to 64 threads, got "
                          "'two'"]),
    ({'top_k': 5000}, ['parameter top_k (set on /edge_classifier with -p or --params-file)']),
    ({'model': 'nosuchmodel'}, ["parameter model (set on /edge_classifier with -p or "
                                "--params-file): unknown model 'nosuchmodel'"]),
])
def test_startup_errors_blame_the_command_line(params, words):
    proc = ros_process('edge_classifier.node', params)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and 'Traceback' not in err, err
    for word in words:
        assert word in err, err
    assert 'efficientnet_lite0.yaml' not in err


def test_a_managed_node_is_fixed_by_setting_a_parameter_not_by_a_restart(
        ros, tmp_path, default_cfg):
    """Started with a model that does not exist: configure fails; `ros2 param set model`
    while unconfigured fixes it; configure reads the parameters and the new model's YAML
    (its keys the user did not set follow the new YAML); once configured, the startup
    parameters are fixed until cleanup. Every transition logs one line."""
    other = write_params_file(default_cfg.replace(model_name='lite0_top3', top_k=3,
                                                  score_threshold=0.01),
                              tmp_path / 'lite0_top3.yaml')
    name = 'fixable'
    fqn = f'/{name}'
    node = Managed(ros, {'model': 'nosuchmodel', 'image_topics': [f'/{name}/image'],
                         'output_topic': f'/{name}/classification', 'diagnostics_period': 0.1},
                   name)
    diags = ros.collect(DiagnosticArray, '/diagnostics', 50)
    try:
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not node.change(Transition.TRANSITION_CONFIGURE)
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED
        bad = set_param(ros, fqn, 'workers', 'two')   # checked while unconfigured too
        assert not bad.successful and bad.reason == (
            "parameter workers (ros2 param set on /fixable): expected an integer from 1 to 64 "
            "threads, got 'two'")
        assert not set_param(ros, fqn, 'workers', 0).successful   # (rclpy: out of range)
        assert set_param(ros, fqn, 'model', str(other)).successful
        assert set_param(ros, fqn, 'workers', 1).successful
        assert node.change(Transition.TRANSITION_CONFIGURE)
        values = get_params(ros, fqn, ['top_k', 'score_threshold', 'workers', 'model_name'])
        assert values['top_k'].integer_value == 3                  # from the new YAML
        assert abs(values['score_threshold'].double_value - 0.01) < 1e-9
        assert values['workers'].integer_value == 1                 # the user's
        assert values['model_name'].string_value == 'lite0_top3'
        refused = set_param(ros, fqn, 'workers', 2)
        assert not refused.successful and MANAGED in refused.reason
        assert set_param(ros, fqn, 'top_k', 2).successful           # run-time: fine
        assert node.change(Transition.TRANSITION_ACTIVATE)
        assert wait_for(lambda: any(s.name == f'{fqn}: classifier'
                                    for arr in diags for s in arr.status), timeout=10)
        status = [s for arr in diags for s in arr.status if s.name == f'{fqn}: classifier'][-1]
        values = {kv.key: kv.value for kv in status.values}
        assert values['model'] == 'lite0_top3' and values['workers'] == '1'
        assert node.change(Transition.TRANSITION_DEACTIVATE)
        assert node.change(Transition.TRANSITION_CLEANUP)
        assert set_param(ros, fqn, 'workers', 2).successful          # unconfigured again
    finally:
        code, _, err, _ = stop(node.proc)
    assert code == 0 and 'Traceback' not in err, err
    assert "configure failed: parameter model (set on /fixable with -p or --params-file): " \
           "unknown model 'nosuchmodel'" in err
    for step in ('configured in', 'activated in', 'deactivated in', 'cleaned up in'):
        assert len([line for line in err.splitlines() if f'] {step}' in line
                    or f']: {step}' in line]) == 1, (step, err)
    assert 'deactivated in' in err and 'dropped' in err


def test_diagnostics_are_named_by_the_fully_qualified_name(ros):
    diags = ros.collect(DiagnosticArray, '/diagnostics', 50)
    procs = [ros_process('edge_classifier.node', {'diagnostics_period': 0.2, 'workers': 1},
                         ros_args=('-r', f'__ns:=/{ns}')) for ns in ('rb1', 'rb2')]

    def names():
        return {s.name for arr in diags for s in arr.status}

    try:
        assert wait_for(lambda: {'/rb1/edge_classifier: classifier',
                                 '/rb2/edge_classifier: classifier'} <= names(), timeout=30), \
            names()
    finally:
        for proc in procs:
            code, _, err, _ = stop(proc)
            assert code == 0, err


def _python_value(value):
    """A ParameterValue as the Python value a YAML file gives."""
    return {ParameterType.PARAMETER_BOOL: value.bool_value,
            ParameterType.PARAMETER_INTEGER: value.integer_value,
            ParameterType.PARAMETER_DOUBLE: value.double_value,
            ParameterType.PARAMETER_STRING: value.string_value,
            ParameterType.PARAMETER_DOUBLE_ARRAY: list(value.double_array_value)}[value.type]


def test_every_shipped_model_yaml_is_a_params_file_the_node_takes(ros):
    """config/<model>.yaml is in ROS 2 params-file form: `--params-file` (and a launch
    file's parameters=[...]) hands it to the node unchanged, every key a parameter of the
    node with the file's value (a managed node, unconfigured: no model file is needed)."""
    import yaml
    files = sorted(CONFIG_DIR.glob('*.yaml'))
    assert len(files) == 12   # Lite0, MobileNetV2, V3 large and small, MobileOne S0-S4, B2-B4
    procs = {path: ros_process('edge_classifier.lifecycle_node',
                               ros_args=('--params-file', str(path),
                                         '-r', f'__node:=params_{path.stem}'))
             for path in files}
    try:
        for path, proc in procs.items():
            expected = yaml.safe_load(path.read_text())['/**']['ros__parameters']
            # 12 processes start at once: on 2 slow or busy cores the first may need most
            # of a minute before its services are up (each loads rclpy, NumPy, OpenCV, ORT)
            got = get_params(ros, f'/params_{path.stem}', sorted(expected),
                             timeout=20.0 + 10.0 * len(procs))
            assert {k: _python_value(v) for k, v in got.items()} == expected, path
            assert proc.poll() is None, stop(proc, sig=None)[2]
    finally:
        results = {path: stop(proc) for path, proc in procs.items()}
    for path, (code, _, err, _) in results.items():
        assert code == 0 and 'unknown parameter' not in err, f'{path}: {err}'


def test_the_default_model_yaml_as_params_file_runs_the_plain_node(ros):
    path = CONFIG_DIR / 'efficientnet_lite0.yaml'
    proc = ros_process('edge_classifier.node',
                       ros_args=('--params-file', str(path), '-r', '__node:=params_plain'))
    try:
        got = get_params(ros, '/params_plain', ['model_name', 'source', 'workers'])
        values = [_python_value(v) for v in got.values()]
        assert values == ['efficientnet_lite0', 'efficientnet_lite0', 2]
    finally:
        code, _, err, _ = stop(proc, timeout=30)
    assert code == 0 and 'Traceback' not in err, err
