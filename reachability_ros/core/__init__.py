"""The ROS-free, torch-free core: numpy, Pinocchio, onnxruntime and the standard library."""
