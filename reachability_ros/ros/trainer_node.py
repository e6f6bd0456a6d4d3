"""The ``trainer`` node: train, evaluate and export a stance sampler, then exit.

Usage::

    ros2 run reachability_ros trainer --ros-args \\
        -p config:=config/train_tiny.yaml -p output_dir:=runs/tiny \\
        [-p overrides:="['train.max_epochs=2']"]

It calls the same function as the trainer CLI
(``reachability_ros.training.train.train_from_config``) with a logger that writes
to the node's logger; the ONNX model lands in ``output_dir/model.onnx``.
Exit code 0 on success, 1 on a bad configuration (one FATAL line, no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter

from reachability_ros import config_io
from reachability_ros.core.errors import ConfigError, ReachabilityError

from .conversions import plain_parameter_value

NODE_NAME = "trainer"


class TrainerNode(Node):
    """Holds the trainer's parameters and logger; :meth:`run` does the work."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.declare_parameter("config", "", ParameterDescriptor(
            description="training config (config/train_*.yaml); relative paths resolve "
                        "against the working directory, then the package share directory",
            read_only=True))
        self.declare_parameter("output_dir", "", ParameterDescriptor(
            description="output folder (checkpoint, metrics, plots, model.onnx); empty = "
                        "runs/<config name>", read_only=True))
        self.declare_parameter("overrides", Parameter.Type.STRING_ARRAY, ParameterDescriptor(
            description="config overrides as key=value strings, e.g. ['train.max_epochs=2']",
            read_only=True))

    def _overrides(self) -> dict:
        try:
            items = plain_parameter_value(self.get_parameter("overrides").value) or []
        except Exception:  # declared by type only and not set
            items = []
        return config_io.parse_overrides(items)

    def run(self) -> dict:
        """Train from the parameters; return the trainer's summary.

        Raises:
            ConfigError: no or a bad config, bad overrides.
            ImportError: torch is not installed.
        """
        config = str(self.get_parameter("config").value).strip()
        if not config:
            raise ConfigError("set the training config: --ros-args -p config:=config/"
                              "train_tiny.yaml -p output_dir:=runs/tiny")
        path = config_io.resolve_data_path(config)
        if not Path(path).is_file():
            raise ConfigError(f"training config {config!r} not found (looked at {path})")
        out = str(self.get_parameter("output_dir").value).strip() or str(
            Path("runs") / Path(config).stem)
        overrides = self._overrides()
        from reachability_ros.training.train import train_from_config

        logger = self.get_logger()
        logger.info(f"training from {path} into {out}"
                    + (f" with overrides {overrides}" if overrides else ""))
        return train_from_config(str(path), out, overrides or None,
                                 log=lambda msg: logger.info(str(msg)))


def main(args: list[str] | None = None) -> int:
    """Run the trainer once and exit; return the process exit code."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = TrainerNode()
        except Exception as exc:  # a parameter of the wrong type, e.g. config:=3
            _fatal(None, f"{type(exc).__name__}: {exc}")
            return 1
        summary = node.run()
        brief = {k: v for k, v in summary.items() if k != "metrics"}
        node.get_logger().info("done: " + json.dumps(brief, default=str))
        return 0
    except (ReachabilityError, FileNotFoundError) as exc:
        _fatal(node, f"{type(exc).__name__}: {exc}")
        return 1
    except ImportError as exc:
        _fatal(node, f"the trainer needs torch (pip install torch==2.13.0 onnx tqdm): {exc}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        _fatal(node, "interrupted")
        return 130
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _fatal(node: Node | None, message: str) -> None:
    logger = node.get_logger() if node is not None else get_logger(NODE_NAME)
    logger.fatal(" ".join(message.split()))


if __name__ == "__main__":
    raise SystemExit(main())
