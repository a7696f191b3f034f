"""What configure builds and cleanup takes down: the model, the worker pool, the outputs,
the inputs and the diagnostics of one configured node, composed; close() is the one
teardown (destroy_node, cleanup, shutdown and errors all end here)."""
from ..boxes import BoxOptions
from ..pipeline import Classifier
from ..pool import WorkerPool
from .diagnostics import Diagnostics
from .inputs import Inputs, camera_topics
from .outputs import Outputs


class Session:
    """configure -> Session(node, cfg, io, parameters); activate(); deactivate(); close().
    Each step returns one line saying what it did (the node logs it with its duration)."""

    def __init__(self, node, cfg, io, parameters):
        """Built whole, in the order a frame flows backwards: the model, the outputs, the
        pool that publishes into them, the inputs that feed the pool, the diagnostics that
        watch all of them. Nothing is wired afterwards; a failure takes down what was
        built."""
        self.node = node
        self.cfg = cfg
        self.io = io
        self.active = False
        self.pool = self.outputs = self.inputs = self.diagnostics = None
        # a BackendError/LabelsError says what and the fix
        self.classifier = Classifier(cfg, box_options=BoxOptions(
            io['box_expand'], io['box_square'], io['min_box_size'], io['max_detections']),
            classes=io['classes'], class_thresholds=io['class_thresholds'])
        try:
            backend = self.classifier.backend
            log = node.get_logger()
            if self.classifier.untrained:
                log.error(f'MODEL HAS UNTRAINED (RANDOM) WEIGHTS: {backend.describe()}. Its '
                          f'classes are meaningless; use it for speed measurements only.')
            parameters.publish_class_names(
                self.classifier.labels or [str(i) for i in range(cfg.num_classes)])
            self.outputs = Outputs(node, io, camera_topics(node, io),
                                   f'{cfg.model_name} ({backend.name})')
            self.pool = WorkerPool(self.classifier, cfg.workers,
                                   on_result=self.outputs.publish_result,
                                   on_error=self._on_frame_error, logger=log,
                                   max_rate=io['max_rate'])
            self.inputs = Inputs(node, io, self.classifier.geometry, self.pool.submit)
            self.diagnostics = Diagnostics(node, io['diagnostics_period'], self.classifier,
                                           self.pool, self.outputs.overlay_worker,
                                           self.inputs, self.outputs.publish_diagnostics)
            self.pool.start()
        except BaseException:
            self.close()
            raise

    def summary(self):
        backend = self.classifier.backend
        return (f'model {self.cfg.model_name} ({self.cfg.origin}): {backend.describe()}, '
                f'{self.cfg.workers} workers')

    def activate(self):
        """Outputs open, label map latched, diagnostics on, inputs last (once a camera
        sees a subscriber, everything is ready)."""
        self.outputs.open()
        self.publish_label_info()
        self.diagnostics.start()
        self.inputs.subscribe()
        self.active = True
        flows = []
        whole = [t for t in self.inputs.topics if t not in self.inputs.detection_topics]
        if whole:
            flows.append(f'classifying {", ".join(whole)} -> '
                         f'{self.node.resolve_topic_name(self.io["output_topic"])}')
        if self.inputs.detection_topics:
            pairs = ', '.join(f'{image} + {det}'
                              for image, det in self.inputs.detection_topics.items())
            flows.append(f'classifying the boxes of {pairs} -> '
                         f'{self.node.resolve_topic_name(self.io["detections_output_topic"])}')
        return '; '.join(flows)

    def deactivate(self):
        """Nothing is published once this returns; frames waiting or in flight are dropped
        (counted); the model stays loaded and the workers wait."""
        was_active, self.active = self.active, False
        if self.outputs is not None:
            self.outputs.close()
        if self.inputs is not None:
            self.inputs.unsubscribe()
        in_flight = 0
        if self.pool is not None:
            in_flight = self.pool.stats()['in_flight']
            self.pool.discard_waiting()
        if self.diagnostics is not None:
            self.diagnostics.stop()
        if not was_active:
            return 'was not active'
        return (f'unsubscribed, outputs closed; {in_flight} frame(s) waiting or in a worker '
                f'dropped')

    def close(self):
        """Deactivate, stop the threads, unload the model (unless a worker is still inside
        the backend), destroy publishers and subscriptions. Safe on a half-built session."""
        self.deactivate()
        stopped = self.pool.stop() if self.pool is not None else True
        if self.outputs is not None:
            self.outputs.destroy()
        if self.inputs is not None:
            self.inputs.destroy()
        if stopped:
            self.classifier.close()
            return 'workers stopped, model unloaded, publishers destroyed'
        self.node.get_logger().error('the backend stays loaded: a worker is still in it')
        return 'a worker did not stop: the model stays loaded'

    def apply(self, cfg, io):
        """A run-time change (top_k, score_threshold, classes, class_thresholds, max_rate):
        the next frames see all of it. A ConfigError (a class the labels do not have)
        leaves everything as it was."""
        settings = self.classifier.settings_for(cfg, io['classes'], io['class_thresholds'])
        threshold_changed = cfg.score_threshold != self.cfg.score_threshold
        self.cfg, self.io = cfg, io
        self.classifier.settings = settings
        self.pool.max_rate = io['max_rate']
        if threshold_changed:
            self.publish_label_info()

    def publish_label_info(self):
        cfg = self.cfg
        self.outputs.publish_label_info(
            self.node.get_parameter('class_names').value, cfg.score_threshold,
            f'{cfg.model_name} ({self.classifier.backend.name}, NV12 '
            f'{cfg.input_width}x{cfg.input_height})')

    def _on_frame_error(self, source, kind, exc):
        log = self.node.get_logger()
        if kind == 'malformed':
            log.warning(f'{source}: dropped a malformed frame: {exc}', throttle_duration_sec=2.0)
        else:
            log.error(f'{source}: inference failed: {type(exc).__name__}: {exc}',
                      throttle_duration_sec=2.0)
