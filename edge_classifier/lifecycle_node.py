"""The classifier as a managed (lifecycle) node: the same node name, parameters and parts
as classifier_node (node.ClassifierParts), run on lifecycle transitions.

    configure   load and check the model and labels, create the publishers, start the
                workers (a bad model fails the transition with the reason, logged; the
                node stays up, unconfigured)
    activate    subscribe, publish LabelInfo/VisionInfo (latched) and diagnostics
    deactivate  unsubscribe; nothing is published once the transition has returned;
                frames waiting or in flight are dropped (counted); the model stays loaded
    cleanup     stop the workers, unload the model, drop the publishers
    shutdown    from any state; SIGINT/SIGTERM end the process cleanly in any state

    ros2 run edge_classifier classifier_lifecycle_node
    ros2 lifecycle set /edge_classifier configure && ros2 lifecycle set /edge_classifier activate
"""
import sys

from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from .errors import EdgeClassifierError
from .node import NODE_NAME, ClassifierParts
from .ros_main import run_node


class ClassifierLifecycleNode(ClassifierParts, LifecycleNode):

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._unusable = None
        try:
            self._init_parts()
        except (EdgeClassifierError, ParameterException) as exc:
            # A managed node stays up and reports it on configure, where a manager sees it.
            self._unusable = exc
            self.get_logger().error(f'cannot be configured: {exc}')

    def _fail(self, step, exc):
        self.get_logger().error(f'{step} failed: {exc}')
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state):
        if self._unusable is not None:
            return self._fail('configure', self._unusable)
        try:
            self._configure()
        except EdgeClassifierError as exc:
            return self._fail('configure', exc)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        self.session.activate()
        return super().on_activate(state)

    def on_deactivate(self, state):
        self.session.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state):
        self._teardown()
        return TransitionCallbackReturn.SUCCESS


def main(args=None):
    return run_node(ClassifierLifecycleNode, NODE_NAME, args, large_frames=True)


if __name__ == '__main__':
    sys.exit(main())
