"""Launch the classifier with a model config, optionally with the sample camera.

    ros2 launch edge_classifier classify.launch.py model:=mobilenetv3
    ros2 launch edge_classifier classify.launch.py model:=/path/to/my_model.yaml \
        image_topics:="[/front/image_raw, /rear/image_raw]" backend:=onnxruntime workers:=4
    ros2 launch edge_classifier classify.launch.py camera:=sim

model: a name from the package's config/ (config/<name>.yaml, resolved through the
package share directory) or a path to a YAML file; an unknown name fails listing the
available ones. The YAML is handed to the node unchanged as its parameters file.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'edge_classifier'


def resolve_model(model):
    """config/<model>.yaml from the share directory, or an existing YAML path."""
    if model.endswith(('.yaml', '.yml')) or os.sep in model:
        path = os.path.abspath(os.path.expanduser(model))
        if not os.path.isfile(path):
            raise RuntimeError(f'model config {path} does not exist')
        return path
    config_dir = os.path.join(get_package_share_directory(PACKAGE), 'config')
    path = os.path.join(config_dir, model + '.yaml')
    if not os.path.isfile(path):
        names = sorted(f[:-5] for f in os.listdir(config_dir) if f.endswith('.yaml'))
        raise RuntimeError(f"unknown model '{model}'; available models: {', '.join(names)} "
                           f'(or give a path to a YAML file)')
    return path


def parse_topics(text):
    """'[/a, /b]', '/a,/b' or '/a' -> ['/a', '/b']."""
    return [t.strip().strip('\'"') for t in text.strip().strip('[]').split(',') if t.strip()]


def _launch_setup(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in (
        'model', 'image_topics', 'compressed_topics', 'backend', 'workers', 'namespace',
        'output_topic', 'camera', 'camera_rate', 'camera_encoding', 'reliability')}
    overrides = {'image_topics': parse_topics(arg['image_topics']) or [''],
                 'compressed_topics': parse_topics(arg['compressed_topics']) or [''],
                 'output_topic': arg['output_topic'], 'reliability': arg['reliability']}
    if arg['backend']:
        overrides['backend'] = arg['backend']
    if arg['workers']:
        overrides['workers'] = int(arg['workers'])
    actions = [Node(package=PACKAGE, executable='classifier_node', name='edge_classifier',
                    namespace=arg['namespace'], output='screen', emulate_tty=True,
                    parameters=[resolve_model(arg['model']), overrides])]
    if arg['camera'] == 'sim':
        topics = overrides['image_topics']
        actions.append(Node(package=PACKAGE, executable='sample_camera', name='sample_camera',
                            namespace=arg['namespace'], output='screen',
                            parameters=[{'topic': topics[0] if topics[0] else '/image_raw',
                                         'rate': float(arg['camera_rate']),
                                         'encoding': arg['camera_encoding']}]))
    elif arg['camera'] not in ('', 'none'):
        raise RuntimeError(f"camera:={arg['camera']}: expected sim or none")
    return actions


def generate_launch_description():
    args = [
        ('model', 'efficientnet_lite0', 'model config name (config/<name>.yaml) or YAML path'),
        ('image_topics', '[/image_raw]', 'sensor_msgs/Image topics, e.g. "[/a, /b]"'),
        ('compressed_topics', '[]', 'sensor_msgs/CompressedImage topics'),
        ('backend', '', 'override the config: auto, onnxruntime or bpu'),
        ('workers', '', 'override the config: number of worker threads'),
        ('namespace', '', 'namespace of the nodes'),
        ('output_topic', '/classification', 'vision_msgs/Classification topic'),
        ('reliability', 'auto', 'input QoS: auto (match the camera), best_effort or reliable'),
        ('camera', 'none', 'sim: also start the sample camera (bundled photos)'),
        ('camera_rate', '5.0', 'sample camera rate (Hz)'),
        ('camera_encoding', 'bgr8', 'sample camera encoding'),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in args] + [OpaqueFunction(function=_launch_setup)])
