"""The node's /diagnostics status: rates, latencies, the books of every source and the
threads alive, published on a timer while the node is active."""
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

ERROR_STREAK = 5  # consecutive backend failures before diagnostics report ERROR
BOOKS = ('received', 'classified', 'dropped', 'malformed', 'errors', 'throttled', 'in_flight')
# "<source>: received/classified/dropped/malformed/errors/throttled/in_flight"
BOOKS_KEY = '/'.join(BOOKS)
# the two-stage pipeline's pairing, per camera (pairing.PairingStats)
PAIRING = ('images', 'detections', 'paired', 'images_unmatched', 'detections_orphaned',
           'images_waiting', 'detections_waiting')
PAIRING_KEY = '/'.join(PAIRING)


def node_of(status_name):
    """The node's own name in a status name: '/robot1/edge_classifier: classifier' ->
    'edge_classifier' (the name is fully qualified so robots sharing /diagnostics differ)."""
    return status_name.split(':', 1)[0].rsplit('/', 1)[-1]


def status_level(stats, untrained, overlay_alive=True):
    """(level, message) of the classifier's status from a pool stats() snapshot."""
    dead = []
    if stats['live_workers'] < stats['workers']:
        dead.append(f'{stats["live_workers"]} of {stats["workers"]} workers alive')
    if not stats['converter_alive']:
        dead.append('the converter thread is dead')
    if not overlay_alive:
        dead.append('the overlay thread is dead')
    if dead:
        return DiagnosticStatus.ERROR, '; '.join(dead)
    if stats['consecutive_errors'] >= ERROR_STREAK:
        return DiagnosticStatus.ERROR, \
            f'inference failing: {stats["consecutive_errors"]} errors in a row'
    if untrained:
        return DiagnosticStatus.WARN, 'model has untrained weights'
    return DiagnosticStatus.OK, 'classifying'


class Diagnostics:
    """A timer (started by start(), on activate) publishing the status of the parts it is
    given: the classifier, the pool's stats, the overlay thread, the inputs (reliability,
    pairing), through `publish`."""

    def __init__(self, node, period, classifier, pool, overlay_worker, inputs, publish):
        self.node = node
        self.period = period
        self.classifier = classifier
        self.pool = pool
        self.overlay_worker = overlay_worker
        self.inputs = inputs
        self.publish = publish
        self._timer = None

    def start(self):
        if self._timer is None:
            self._timer = self.node.create_timer(self.period, self._publish)

    def stop(self):
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None

    def _publish(self):
        self.publish(self.status())

    def status(self):
        classifier, backend = self.classifier, self.classifier.backend
        s = self.pool.stats()
        overlay = self.overlay_worker
        status = DiagnosticStatus()
        status.name = f'{self.node.get_fully_qualified_name()}: classifier'
        status.hardware_id = backend.name
        status.level, status.message = status_level(s, classifier.untrained, overlay.alive())
        values = [('model', classifier.cfg.model_name), ('backend', backend.name),
                  ('model_path', str(backend.model_path)), ('workers', str(s['workers'])),
                  ('live_workers', str(s['live_workers']))]
        # the time of a frame, split as hobot's rt_stat does: decode + convert, inference,
        # post-process + publish (p50 each); then the whole way, submit to published
        for key in ('input_fps', 'classified_fps', *BOOKS, 'decode_convert_ms_p50',
                    'inference_ms_p50', 'inference_ms_p99', 'postprocess_publish_ms_p50',
                    'end_to_end_ms_p50', 'end_to_end_ms_p99'):
            value = s[key]
            values.append((key, f'{value:.1f}' if key.endswith('_fps') else
                           f'{value:.2f}' if isinstance(value, float) else str(value)))
        values.append(('overlays', f'{overlay.drawn} drawn, {overlay.dropped} dropped (only '
                                   f'while classification/overlay is watched)'))
        for topic, reliability in self.inputs.reliabilities().items():
            values.append((f'{topic}: reliability', reliability))
        pairing = self.inputs.pairing
        if pairing is not None:
            values.append(('boxes_per_s', f'{s["boxes_per_s"]:.1f}'))
            values.append(('boxes', str(s['boxes'])))
            values.append(('boxes_skipped', str(s['boxes_skipped'])))
            for source, ps in pairing.stats().items():
                values.append((f'{source}: {PAIRING_KEY}',
                               '/'.join(str(getattr(ps, key)) for key in PAIRING)))
        for source, st in s['sources'].items():
            values.append((f'{source}: {BOOKS_KEY}',
                           '/'.join(str(getattr(st, key)) for key in BOOKS)))
            if st.last_error:
                values.append((f'{source}: last error', st.last_error[:200]))
        status.values = [KeyValue(key=k, value=v) for k, v in values]
        return status
