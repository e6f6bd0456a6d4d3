"""ROS 2 glue: the only subpackage that imports rclpy and message packages.

Plain modules (no ROS imports, tested without ROS):

- :mod:`.conversions`: request checks, answers, reports;
- :mod:`.parameters`: parameter declarations and their checks;
- :mod:`.markers`: RViz marker specifications (the robot from its primitives included);
- :mod:`.companions`: the worker that publishes the companion topics after a response;
- :mod:`.lifecycle`: signals, bounded waits and exit codes of the nodes;
- :mod:`.trainer_run`: the trainer node's checks, progress messages and training thread;
- :mod:`.launch_args`: the launch file's decisions;
- :mod:`.navigation`: the stance navigator's decisions (stances, Nav2, arrival, result codes);
- :mod:`.navigator_io`: the navigator's parameters, launch parameters and plain answers;
- :mod:`.entry`: the console-script entry points (a quiet exit on a signal during start-up).

ROS modules (imported only by the executables):

- :mod:`.messages`: messages <-> plain values (``tf_transformations`` for quaternions);
- :mod:`.stance_node`: the ``stance_server`` node (``/propose_stance``);
- :mod:`.stance_navigator`: the ``stance_navigator`` node (``/navigate_to_grasp``), with
  :mod:`.stance_client` (its client of ``/propose_stance``);
- :mod:`.camera_input`: live camera intrinsics (a ``sensor_msgs/CameraInfo`` subscription);
- :mod:`.trainer_node`: the ``trainer`` node.

Importing this package imports nothing from ROS.
"""
