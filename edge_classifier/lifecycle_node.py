"""The classifier as a managed (lifecycle) node: the same node name, parameters and parts
as classifier_node (node.ClassifierParts), run on lifecycle transitions.

    configure   read the parameters (while unconfigured every one can be set), load and
                check the model and labels, create the publishers, start the workers (a
                bad model fails the transition with the reason, logged; the node stays
                up, unconfigured: set the parameter right and configure again)
    activate    subscribe, publish LabelInfo/VisionInfo (latched) and diagnostics
    deactivate  unsubscribe; nothing is published once the transition has returned;
                frames waiting or in flight are dropped (counted); the model stays loaded
    cleanup     stop the workers, unload the model, drop the publishers
    shutdown    from any state; SIGINT/SIGTERM end the process cleanly in any state

    ros2 run edge_classifier classifier_lifecycle_node
    ros2 lifecycle set /edge_classifier configure && ros2 lifecycle set /edge_classifier activate
"""
import sys
import time

from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from .errors import EdgeClassifierError
from .node import NODE_NAME, ClassifierParts
from .ros_main import run_node
from .wiring.parameters import help_text


class ClassifierLifecycleNode(LifecycleNode):

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.parts = None
        self._unusable = None
        try:
            self.parts = ClassifierParts(self, managed=True)
        except (EdgeClassifierError, ParameterException) as exc:
            # A params file this node cannot take (an unknown key): it stays up and reports
            # it on configure, where a manager sees it; a restart is needed.
            self._unusable = exc
            self.get_logger().error(f'cannot be configured: {exc}')
            return
        if self.parts.parameters.yaml_error:
            self.get_logger().warning(f'{self.parts.parameters.yaml_error}; configure will '
                                      f'fail until it is set right (ros2 param set)')

    def _fail(self, step, exc):
        self.get_logger().error(f'{step} failed: {exc}')
        return TransitionCallbackReturn.FAILURE

    def _step(self, step, do):
        """A transition past configure (so the parts exist): do it, log what it did."""
        started = time.monotonic()
        self.parts.log_step(step, started, do())

    def on_configure(self, state):
        started = time.monotonic()
        if self._unusable is not None:
            return self._fail('configure', self._unusable)
        try:
            what = self.parts.configure()
        except EdgeClassifierError as exc:
            return self._fail('configure', exc)
        self.parts.log_step('configured', started, what)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        self._step('activated', self.parts.activate)
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._step('deactivated', self.parts.deactivate)
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._step('cleaned up', self.parts.teardown)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        if self.parts is not None:
            self._step(f'shut down (from {state.label})', self.parts.teardown)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state):
        if self.parts is not None:
            self._step(f'error handled (from {state.label})', self.parts.teardown)
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        if self.parts is not None:
            self.parts.destroy()
        return super().destroy_node()


def main(args=None):
    return run_node(ClassifierLifecycleNode, NODE_NAME, args, large_frames=True,
                    help_text=help_text('classifier_lifecycle_node', __doc__))


if __name__ == '__main__':
    sys.exit(main())
