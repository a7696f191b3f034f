"""The classifier's /diagnostics level from a pool snapshot (ROS messages, no rclpy.init):
fewer live threads than configured is ERROR, whatever else the numbers say."""
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from edge_classifier.wiring.diagnostics import ERROR_STREAK, status_level


def stats(**changes):
    base = {'workers': 2, 'live_workers': 2, 'converter_alive': True, 'consecutive_errors': 0}
    base.update(changes)
    return base


@pytest.mark.parametrize('changes, overlay, level, words', [
    ({}, True, DiagnosticStatus.OK, 'classifying'),
    ({'live_workers': 1}, True, DiagnosticStatus.ERROR, '1 of 2 workers alive'),
    ({'live_workers': 0}, True, DiagnosticStatus.ERROR, '0 of 2 workers alive'),
    ({'converter_alive': False}, True, DiagnosticStatus.ERROR, 'converter thread is dead'),
    ({}, False, DiagnosticStatus.ERROR, 'overlay thread is dead'),
    ({'consecutive_errors': ERROR_STREAK}, True, DiagnosticStatus.ERROR, 'errors in a row'),
    ({'consecutive_errors': ERROR_STREAK - 1}, True, DiagnosticStatus.OK, 'classifying'),
])
def test_status_level(changes, overlay, level, words):
    got, message = status_level(stats(**changes), untrained=False, overlay_alive=overlay)
    assert got == level and words in message, message


def test_a_dead_worker_outranks_untrained_weights():
    assert status_level(stats(), untrained=True)[0] == DiagnosticStatus.WARN
    assert status_level(stats(live_workers=1), untrained=True)[0] == DiagnosticStatus.ERROR
