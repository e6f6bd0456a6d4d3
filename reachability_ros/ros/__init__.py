"""ROS 2 glue: the only subpackage that imports rclpy and message packages.

- :mod:`.conversions` and :mod:`.markers`: pure functions over plain values
  (no ROS imports), tested without ROS;
- :mod:`.stance_node`: the ``stance_server`` node (``/propose_stance``);
- :mod:`.trainer_node`: the ``trainer`` node (offline training, then exit).

Importing this package imports nothing from ROS.
"""
