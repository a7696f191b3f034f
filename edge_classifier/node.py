"""The classifier node: ROS wiring only, composed of small parts (edge_classifier/wiring):

    NodeParameters  declares and checks the parameters -> cfg (model), io (topics, QoS, ...)
    Session         what configure builds and cleanup takes down, built whole in one
                    constructor: the Classifier, then
        Outputs     every publisher, behind one gate (nothing goes out after deactivate)
        WorkerPool  (pool.py) converts, infers and hands each result to Outputs
        Inputs      the camera subscriptions (reliability auto), handing frames to the pool
        Diagnostics the /diagnostics status of all of them, on a timer

Frames from the subscriptions go into the pool's latest-frame slots (the callbacks only
store the message); the pool converts, infers and publishes from its own threads, so the
executor never blocks on inference and a slow model drops stale frames.

Two thin node classes over the same parts (ClassifierParts): ClassifierNode configures and
activates itself at construction; the managed node (lifecycle_node.py) does the same steps
on its transitions. Both end in one teardown, Session.close().
"""
import sys
import time

from rclpy.node import Node

from .ros_main import run_node
from .wiring.parameters import NodeParameters, StartupError, help_text
from .wiring.session import Session

NODE_NAME = 'edge_classifier'

__all__ = ['ClassifierNode', 'ClassifierParts', 'NODE_NAME', 'StartupError', 'main']


class ClassifierParts:
    """What both node classes own: the parameters, the session while configured, one
    teardown, and a log line per step saying what it did and how long it took."""

    def __init__(self, node, managed=False):
        self.node = node
        self.session = None
        self.parameters = NodeParameters(node, managed, on_change=self._on_parameters_changed)

    def configure(self):
        """Read the parameters, load the model, make the outputs, start the workers."""
        cfg, io = self.parameters.read()
        self.session = Session(self.node, cfg, io, self.parameters)
        self.parameters.configured = True
        return self.session.summary()

    def activate(self):
        return self.session.activate()

    def deactivate(self):
        return self.session.deactivate()

    def log_step(self, step, started, what):
        ms = (time.monotonic() - started) * 1e3
        self.node.get_logger().info(f'{step} in {ms:.0f} ms: {what}')

    def _on_parameters_changed(self, cfg, io):
        if self.session is not None:
            self.session.apply(cfg, io)

    def teardown(self):
        """The one teardown path: destroy_node, cleanup, shutdown, errors. Returns what it
        did, for the transition's log line."""
        session, self.session = self.session, None
        self.parameters.configured = False
        if session is None:
            return 'nothing was configured'
        return session.close()

    def destroy(self):
        """Before rclpy destroys the node: stop the threads the node owns."""
        if self.session is None:
            return
        started = time.monotonic()
        what = self.teardown()
        if self.node.context.ok():  # (after a signal, /rosout is gone: no noise)
            self.log_step('stopped', started, what)


class ClassifierNode(Node):
    """The plain node: declared, configured and active from construction on."""

    def __init__(self, **kwargs):
        started = time.monotonic()
        super().__init__(NODE_NAME, **kwargs)
        self.parts = None                       # (destroy_node may run if the next fails)
        self.parts = ClassifierParts(self)
        try:
            what = self.parts.configure()
            flow = self.parts.activate()
        except BaseException:
            self.parts.teardown()
            raise
        self.parts.log_step('ready', started, what)
        self.get_logger().info(flow)

    def destroy_node(self):
        if self.parts is not None:
            self.parts.destroy()
        return super().destroy_node()


HELP = ('Classifies camera frames (image_topics, compressed_topics) and publishes the top-k '
        'on classification (vision_msgs/Classification), with LabelInfo, an overlay image '
        'while watched and /diagnostics. Starts configured and active; '
        'classifier_lifecycle_node is the managed (lifecycle) form.')


def main(args=None):
    return run_node(ClassifierNode, NODE_NAME, args, large_frames=True,   # the overlay
                    help_text=help_text('classifier_node', HELP))


if __name__ == '__main__':
    sys.exit(main())
