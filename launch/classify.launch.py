"""Launch the classifier with a model config, optionally with the sample camera.

    ros2 launch edge_classifier classify.launch.py
    ros2 launch edge_classifier classify.launch.py model:=mobilenetv3 namespace:=robot1
    ros2 launch edge_classifier classify.launch.py model:=/path/to/my_model.yaml \
        image_topics:="[front/image_raw, rear/image_raw]" backend:=onnxruntime workers:=4
    ros2 launch edge_classifier classify.launch.py camera:=sim
    ros2 launch edge_classifier classify.launch.py managed:=true autostart:=false
    ros2 launch edge_classifier classify.launch.py camera:=sim web:=true   # http://127.0.0.1:8080
    ros2 launch edge_classifier classify.launch.py camera:=sim detections:=detections

Arguments are checked and turned into parameters by edge_classifier.launch_args (tested
without launch); the node resolves the model (a name from config/ or a YAML path) and
fails naming the file and the fix. When the classifier exits, the launch shuts down (the
sample camera with it); if it exited with an error, that error is the last line printed
and `ros2 launch` exits non-zero (a clean Ctrl-C still exits 0). managed:=true starts the
lifecycle node; autostart:=true (the default) configures and activates it. Logs are in
colour on a terminal and plain when launch's output goes to a file.
"""
import sys

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnProcessExit, OnProcessIO
from launch.events import Shutdown
from launch.events.process import ShutdownProcess
from launch.events.matchers import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from edge_classifier.launch_args import (ARGUMENTS, OutputTail, classifier_failure,
                                         colour_output, plan)

PACKAGE = 'edge_classifier'


def _launch_setup(context):
    setup = plan({name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS})
    kind = LifecycleNode if setup.managed else Node
    tty = colour_output(sys.stdout)
    classifier = kind(package=PACKAGE, executable=setup.executable, name='edge_classifier',
                      namespace=setup.namespace, output='screen', emulate_tty=tty,
                      parameters=[setup.node_parameters])
    actions = [classifier]
    if setup.autostart:
        def transition(transition_id):
            return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(classifier),
                                               transition_id=transition_id))
        # activate once configured (only after configuring: a later deactivate stays so)
        actions.insert(0, RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=classifier, start_state='configuring', goal_state='inactive',
            entities=[transition(Transition.TRANSITION_ACTIVATE)])))
        actions.append(transition(Transition.TRANSITION_CONFIGURE))
    camera = None
    if setup.camera_parameters is not None:
        camera = Node(package=PACKAGE, executable='sample_camera', name='sample_camera',
                      namespace=setup.namespace, output='screen', emulate_tty=tty,
                      parameters=[setup.camera_parameters])
        actions.append(camera)
    if setup.web_parameters is not None:
        actions.append(Node(package=PACKAGE, executable='web_view', name='web_view',
                            namespace=setup.namespace, output='screen', emulate_tty=tty,
                            parameters=[setup.web_parameters]))
    stderr, failure, camera_done = OutputTail(), [], []

    def report_and_shut_down(reason, context):
        if failure:
            # Raised in an action: launch logs it (the last line) and exits non-zero.
            def fail(_context):
                raise failure[0]
            return [OpaqueFunction(function=fail)]
        # Already shutting down (Ctrl-C): a second Shutdown event makes launch_ros fail.
        return [] if context.is_shutdown else [EmitEvent(event=Shutdown(reason=reason))]

    def classifier_exited(event, context):
        error = classifier_failure(setup.executable, event.returncode, stderr.text())
        if error is not None:
            failure.append(error)
        if failure and camera is not None and not camera_done and not context.is_shutdown:
            # Stop the camera first, so that the classifier's error is printed last.
            return [EmitEvent(event=ShutdownProcess(process_matcher=matches_action(camera)))]
        return report_and_shut_down(f'{setup.executable} exited', context)

    def camera_exited(_event, context):
        camera_done.append(True)
        return report_and_shut_down('sample_camera exited', context)

    actions.append(RegisterEventHandler(OnProcessIO(
        target_action=classifier,
        on_stderr=lambda event: stderr.add(event.text.decode(errors='replace')))))
    actions.append(RegisterEventHandler(OnProcessExit(target_action=classifier,
                                                      on_exit=classifier_exited)))
    if camera is not None:
        actions.append(RegisterEventHandler(OnProcessExit(target_action=camera,
                                                          on_exit=camera_exited)))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS] + [OpaqueFunction(function=_launch_setup)])
