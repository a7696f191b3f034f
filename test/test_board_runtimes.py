"""The board's two Python runtimes over real DDS: the node on hbm_runtime (the model zoo's
newer runtime; the fake in test/fake_hbm follows its documented API) publishes exactly what
it publishes on hobot_dnn (test/fake_bpu) for the same frames, and a relative bpu_path is
taken from the board's preinstalled models (a temporary directory stands in for
/opt/hobot/model/x5/basic), the startup log saying which file, from where."""
import os

from sensor_msgs.msg import Image
from vision_msgs.msg import Classification

from helpers import FAKE_BPU, FAKE_HBM, compiled_model
from ros_helpers import RELIABLE, good_image, ros_process, stop, wait_for


def test_the_node_on_hbm_runtime_publishes_what_it_publishes_on_hobot_dnn(
        ros, default_cfg, sample_bgr, tmp_path):
    board = tmp_path / 'board'
    board.mkdir()
    name = 'efficientnet_lite0_224x224_nv12.bin'
    assert not default_cfg.resolve(name).exists()   # not in the models directory
    compiled_model(board / name, default_cfg.resolve(default_cfg.onnx_path), default_cfg,
                   name='efficientnet_lite0')
    nodes = {}
    for runtime, fake, params in (
            ('pyeasy', FAKE_BPU, {'bpu_path': str(board / name)}),
            ('hbm', FAKE_HBM, {'bpu_path': name,
                               'board_model_dirs': ['/nonexistent', str(board)]})):
        env = {'PYTHONPATH': os.pathsep.join(filter(None, [fake, os.environ.get('PYTHONPATH')]))}
        nodes[runtime] = ros_process('edge_classifier.node', {
            'image_topics': ['/runtimes/image'], 'output_topic': f'/runtimes/{runtime}',
            'backend': 'bpu', 'workers': 1, **params}, env=env,
            ros_args=('-r', f'__node:={runtime}'))
    results = {runtime: ros.collect(Classification, f'/runtimes/{runtime}', 100)
               for runtime in nodes}
    pub = ros.node.create_publisher(Image, '/runtimes/image', RELIABLE)
    frame = good_image(sample_bgr, 'coffee')
    try:
        assert wait_for(lambda: pub.get_subscription_count() >= 2, 60)
        for stamp in (1, 2, 3):
            frame.header.stamp.sec = stamp

            def both():
                return all(any(m.header.stamp.sec == stamp for m in got)
                           for got in results.values())
            for _ in range(3):
                pub.publish(frame)
                if wait_for(both, 10):
                    break
            assert both(), f'stamp {stamp}: not every node answered'
        answers = {runtime: [[(h.class_id, h.score) for h in m.results]
                             for m in sorted(got, key=lambda m: m.header.stamp.sec)]
                   for runtime, got in results.items()}
        assert answers['hbm'][:3] == answers['pyeasy'][:3]
        assert answers['hbm'][0][0][0] == '967'                # espresso
    finally:
        outputs = {runtime: stop(proc) for runtime, proc in nodes.items()}
    for runtime, (code, _, err, _) in outputs.items():
        assert code == 0, err
    err = outputs['hbm'][2]
    assert f"bpu (hbm_runtime) {board / name}, from the board's models ({board})" in err
    assert f'bpu (hobot_dnn) {board / name}' in outputs['pyeasy'][2]
