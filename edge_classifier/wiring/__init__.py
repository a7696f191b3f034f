"""The parts the node classes are made of (rclpy glue only; the pipeline is ROS-free)."""
