"""reachability_ros: where should a mobile manipulator stand to grasp a pose?

Subpackages: ``core`` (numpy, Pinocchio, onnxruntime; no ROS, no torch),
``training`` (torch), ``ros`` (rclpy glue). Importing this package imports
nothing heavy.
"""

__version__ = "0.1.0"
