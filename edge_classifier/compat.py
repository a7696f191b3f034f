"""Differences between the ROS 2 distributions this package runs on, in one place.

Run here: Kilted (rclpy 9.1) and Jazzy (rclpy 7.1), from PyPI wheels. Humble (rclpy 3.3,
the RDK X5) has no wheels to run: every rclpy API the package uses was checked against
rclpy's humble branch by reading (README, "Tested on"). The only one Humble lacks is
rclpy.event_handler (added in Iron), whose old name is kept below.
"""
try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

__all__ = ['SubscriptionEventCallbacks']
