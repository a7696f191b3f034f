"""ament_python package edge_classifier.

install_requires lists nothing that a ROS 2 distro provides (rclpy, message packages,
launch) and nothing pip-only: on a ROS install those come from apt/rosdep via
package.xml; in the standalone environment `make setup` installs them from
standalone/requirements.txt. onnxruntime is a pip-only runtime dependency of the
simulation backend and is installed by the standalone set-up (or `pip install
onnxruntime` on a ROS install); the BPU backend uses the board's hobot_dnn.
"""
from glob import glob

from setuptools import find_packages, setup

package_name = 'edge_classifier'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={package_name: ['web/*']},   # the web view's page
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='edge_classifier developers',
    maintainer_email='edge-classifier@example.com',
    description='ImageNet classifiers on robots: NV12 on the RDK X5 BPU or ONNX Runtime, '
                'results as vision_msgs/Classification.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'classifier_node = edge_classifier.node:main',
            'classifier_lifecycle_node = edge_classifier.lifecycle_node:main',
            'sample_camera = edge_classifier.tools.sample_camera:main',
            'classification_echo = edge_classifier.tools.echo:main',
            'web_view = edge_classifier.web_view:main',
            'edge-classifier-bench = edge_classifier.tools.bench:main',
            'edge-classifier-eval = edge_classifier.tools.evaluate:main',
            'edge-classifier-quantize = edge_classifier.tools.quantize:main',
            'edge-classifier-bag = edge_classifier.tools.bag:main',
        ],
    },
)
