"""The classifier node: ROS wiring only, composed of small parts (edge_classifier/wiring):

    NodeParameters  declares and checks the parameters -> cfg (model), io (topics, QoS, ...)
    Session         what configure builds and cleanup takes down: the Classifier and its
                    WorkerPool (pool.py), with
        Outputs     every publisher, behind one gate (nothing goes out after deactivate)
        Inputs      the camera subscriptions (reliability auto), handing frames to the pool
        Diagnostics the /diagnostics status on a timer

Frames from the subscriptions go into the pool's latest-frame slots (the callbacks only
store the message); the pool converts, infers and publishes from its own threads, so the
executor never blocks on inference and a slow model drops stale frames. ClassifierNode
configures and activates at construction; the managed node (lifecycle_node.py) does the
same steps on its transitions. Both end in one teardown, Session.close().
"""
import sys

from rclpy.node import Node

from .ros_main import run_node
from .wiring.parameters import NodeParameters, StartupError
from .wiring.session import Session

NODE_NAME = 'edge_classifier'

__all__ = ['ClassifierNode', 'ClassifierParts', 'NODE_NAME', 'StartupError', 'main']


class ClassifierParts:
    """What both node classes share: the parameters, the session, one teardown."""

    def _init_parts(self):
        self.session = None
        self.parameters = NodeParameters(self)
        self.parameters.on_change = self._on_parameters_changed

    def _configure(self):
        self.session = Session(self, self.parameters.cfg, self.parameters.io)

    def _on_parameters_changed(self, cfg):
        if self.session is not None:
            self.session.apply(cfg)

    def _teardown(self):
        """The one teardown path: destroy_node, cleanup, shutdown, errors."""
        session, self.session = self.session, None
        if session is not None:
            session.close()

    def destroy_node(self):
        """The node owns its threads: stop them before rclpy destroys the node."""
        self._teardown()
        return super().destroy_node()


class ClassifierNode(ClassifierParts, Node):
    """The plain node: declared, configured and active from construction on."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._init_parts()
        try:
            self._configure()
            self.session.activate()
        except BaseException:
            self._teardown()
            raise


def main(args=None):
    return run_node(ClassifierNode, NODE_NAME, args, large_frames=True)  # the overlay


if __name__ == '__main__':
    sys.exit(main())
