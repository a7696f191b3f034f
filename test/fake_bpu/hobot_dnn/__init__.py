"""Test double of the RDK board's hobot_dnn package (the BPU cannot exist here)."""
