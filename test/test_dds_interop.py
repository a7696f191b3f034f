"""Two separate processes exchange sensor_msgs/Image and vision_msgs/Classification over
real Fast DDS; the vision_msgs types carry upstream's type hashes."""
import json
import sys
from pathlib import Path

import numpy as np
from ament_index_python.packages import get_package_share_directory
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification

from ros_helpers import Harness, stop, wait_for
import subprocess

# RIHS01 hashes of vision_msgs 4.1.1 (ros-perception/vision_msgs, ros2 branch), computed
# by rosidl_generator_type_description from upstream's own .msg files. Definitions that
# differ in any field name or type give a different hash, and Kilted peers then refuse
# to match topics of "the same" type.
UPSTREAM_HASHES = {
    'Classification': 'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'ObjectHypothesis': 'RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
    'LabelInfo': 'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    'VisionClass': 'RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
    'VisionInfo': 'RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
    # the two-stage pipeline's detections
    'Detection2DArray': 'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'Detection2D': 'RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    'BoundingBox2D': 'RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f',
    'ObjectHypothesisWithPose':
        'RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc',
    'Pose2D': 'RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648',
    'Point2D': 'RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247',
}


def test_vision_msgs_type_hashes_equal_upstream():
    share = Path(get_package_share_directory('vision_msgs'))
    for name, expected in UPSTREAM_HASHES.items():
        doc = json.loads((share / 'msg' / f'{name}.json').read_text())
        hashes = {h['type_name']: h['hash_string'] for h in doc['type_hashes']}
        assert hashes[f'vision_msgs/msg/{name}'] == expected, name


def test_image_and_classification_cross_processes_over_dds():
    peer = subprocess.Popen([sys.executable, str(Path(__file__).with_name('dds_peer.py'))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ros = Harness('interop_test')
    try:
        got = ros.collect(Classification, '/peer/classification')
        pub = ros.node.create_publisher(Image, '/peer/image', 10)
        assert wait_for(lambda: pub.get_subscription_count() > 0), 'peer never subscribed'
        img = Image(height=48, width=64, encoding='bgr8', step=192)
        img.data = np.arange(48 * 192, dtype=np.uint8).tobytes()
        img.header.frame_id = 'interop_cam'
        # Matching is not symmetric at first: the peer's reader may not have matched this
        # writer yet and miss an image, so each image is re-sent until its reply comes.
        for i in range(1, 4):
            img.header.stamp.sec = 1000 + i

            def replied(sec=1000 + i):
                if not any(m.header.stamp.sec == sec for m in got):
                    pub.publish(img)
                    return False
                return True
            assert wait_for(replied, timeout=15, interval=0.5), f'no reply to image {i}'
        assert sorted({m.header.stamp.sec for m in got}) == [1001, 1002, 1003]
        assert got[0].header.frame_id == 'interop_cam'
        assert got[0].results[0].class_id == 'pixels' and got[0].results[0].score == 48 * 192
        # the peer's publisher is seen with upstream's type hash
        infos = ros.node.get_publishers_info_by_topic('/peer/classification')
        assert infos and infos[0].topic_type == 'vision_msgs/msg/Classification'
        type_hash = getattr(infos[0], 'topic_type_hash', None)
        if type_hash is not None:  # Jazzy and later expose it
            assert str(type_hash) == UPSTREAM_HASHES['Classification']
    finally:
        ros.close()
        code, _, err, _ = stop(peer)
    assert code == 0, err
