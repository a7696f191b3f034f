"""Baseline nodes for the node benchmark (not product code): what the figures are read against.

    python -m edge_classifier.tools.baselines floor --ros-args -p input:=... -p output:=...
    python -m edge_classifier.tools.baselines naive --ros-args -p input:=... -p output:=...

floor: rclpy's own floor. Receives each sensor_msgs/Image and publishes a Classification
    with its header and no inference: the cost of a Python node that only moves frames.
naive: the node a user writes first. Inference in the subscription callback, default QoS
    (depth 10), a default ONNX Runtime session (ORT's default threads, spinning), and the
    usual OpenCV preprocessing of the default model (short side 256, centre crop 224, RGB,
    (x - 127) / 128), softmax, top-5.
"""
import sys

import cv2
import numpy as np
import rclpy
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, ObjectHypothesis

from ..config import load_config
from ..ros_main import init_tool, shutdown_rclpy, spin_until_stopped


def floor_node():
    node = rclpy.create_node('floor')
    output = node.declare_parameter('output', 'classification').value
    pub = node.create_publisher(Classification, output, 10)

    def on_image(msg):
        out = Classification()
        out.header = msg.header
        pub.publish(out)

    node.create_subscription(Image, node.declare_parameter('input', 'image_raw').value,
                             on_image, 10)
    return node


def naive_node():
    import onnxruntime as ort
    node = rclpy.create_node('naive')
    cfg = load_config('efficientnet_lite0')
    session = ort.InferenceSession(str(cfg.resolve(cfg.onnx_path)))
    input_name = session.get_inputs()[0].name
    output = node.declare_parameter('output', 'classification').value
    pub = node.create_publisher(Classification, output, 10)

    def on_image(msg):
        img = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        scale = 256 / min(msg.height, msg.width)
        img = cv2.resize(img, (round(msg.width * scale), round(msg.height * scale)))
        y, x = (img.shape[0] - 224) // 2, (img.shape[1] - 224) // 2
        rgb = cv2.cvtColor(img[y:y + 224, x:x + 224], cv2.COLOR_BGR2RGB)
        blob = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        logits = session.run(None, {input_name: blob})[0][0]
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        out = Classification()
        out.header = msg.header
        out.results = [ObjectHypothesis(class_id=str(i), score=float(prob[i]))
                       for i in np.argsort(prob)[::-1][:5]]
        pub.publish(out)

    node.create_subscription(Image, node.declare_parameter('input', 'image_raw').value,
                             on_image, 10)
    return node


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    kinds = {'floor': floor_node, 'naive': naive_node}
    if not argv or argv[0] not in kinds:
        print(__doc__, file=sys.stderr)
        return 2
    init_tool(args=argv[1:])
    node = kinds[argv[0]]()
    spin_until_stopped(node)
    node.destroy_node()
    shutdown_rclpy()
    return 0


if __name__ == '__main__':
    sys.exit(main())
