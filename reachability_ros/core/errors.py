"""Typed errors of reachability_ros.

Every error names the offending value and, where there is one, the fix. The
service node catches :class:`ReachabilityError` and answers with a failure
report; nothing of this family is allowed to reach the ROS executor.
"""


class ReachabilityError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidRequest(ReachabilityError, ValueError):
    """A grasp request is malformed: NaN/inf, a non-unit quaternion, absurd height..."""


class ConfigError(ReachabilityError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class DescriptionError(ReachabilityError, ValueError):
    """The robot description lacks a frame, a joint or a structure the code needs."""


class UnknownFrame(DescriptionError):
    """A frame name is not in the robot description (or not known to TF)."""


class ModelMismatch(ReachabilityError):
    """A model file was made for another robot, description or featurization."""
