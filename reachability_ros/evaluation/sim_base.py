"""A simulated LeKiwi for the stance navigator: Nav2 lands the base off the goal, cmd_vel moves it.

:class:`SimulatedRobot` implements the operations of
:class:`reachability_ros.ros.navigation.NavigatorRobot` without ROS, so that the navigator's
every decision runs in the tests and in ``bench/bench_arrival.py``:

- ``propose``: the core's :class:`~reachability_ros.core.pipeline.StanceProposer`, as the
  stance server runs it (the stances and their whole-body configurations);
- ``navigate``: a scripted Nav2 outcome per call (``'succeeded'`` by default); a success
  lands the base at the goal plus a Gaussian error in the goal's frame (``sigma_xy_m``,
  ``sigma_yaw_rad``), as Nav2 stops anywhere within its goal tolerance;
- ``send_twist`` and ``sleep``: the base follows the last body-frame twist, integrated
  exactly on SE(2) in 10 ms steps, with a velocity scale error drawn per motion
  (``scale_sigma``) and white velocity noise (``velocity_noise``): a closed loop must
  correct both;
- ``base_pose``: the true pose plus optional measurement noise (``tf_noise_m``,
  ``tf_noise_rad``), or None while ``tf_available`` is false.

Everything the navigator sends is logged (goals, twists, arm commands, feedback) for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Callable

import numpy as np

from ..core.arrival import integrate_twist
from ..core.types import BasePose, Grasp
from ..ros.navigator_io import NavOutcome, ProposeAnswer

#: Integration step of the simulated base (s).
SIM_STEP_S = 0.01


@dataclass
class SimulatedRobot:
    """The base, Nav2, the stance server and the arm, simulated (see the module docstring).

    Args:
        proposer: a ``StanceProposer`` (``propose(grasp, start, rng)``).
        rng: the random generator of landing errors and actuation noise.
        pose: the base's true pose.
    """

    proposer: Any
    rng: np.random.Generator
    pose: BasePose = field(default_factory=lambda: BasePose(0.0, 0.0, 0.0))
    sigma_xy_m: float = 0.03
    sigma_yaw_rad: float = math.radians(3.0)
    scale_sigma: float = 0.1
    velocity_noise: tuple = (0.001, 0.001, 0.002)
    tf_noise_m: float = 0.0
    tf_noise_rad: float = 0.0
    tf_available: bool = True
    nav_script: list = field(default_factory=list)
    on_sleep: Callable[[SimulatedRobot], None] | None = None
    cancel: bool = False
    time_s: float = 0.0
    goals: list = field(default_factory=list)
    twists: list = field(default_factory=list)
    arm_commands: list = field(default_factory=list)
    feedbacks: int = 0
    proposals: int = 0
    _twist: tuple = (0.0, 0.0, 0.0)
    _scale: np.ndarray = field(default_factory=lambda: np.ones(3))

    def base_pose(self) -> BasePose | None:
        """Return the measured base pose (None while TF is unavailable)."""
        if not self.tf_available:
            return None
        if not (self.tf_noise_m or self.tf_noise_rad):
            return self.pose
        n = self.rng.standard_normal(3)
        return BasePose(self.pose.x + self.tf_noise_m * n[0],
                        self.pose.y + self.tf_noise_m * n[1],
                        self.pose.yaw + self.tf_noise_rad * n[2])

    def propose(self, grasp: Grasp, start: BasePose | None) -> ProposeAnswer:
        """Run the core as the stance server does."""
        self.proposals += 1
        result = self.proposer.propose(grasp, start, np.random.default_rng(0))
        if not result.ok:
            return ProposeAnswer([], [], result.reason)
        return ProposeAnswer([c.base for c in result.candidates],
                             [np.asarray(c.q, dtype=float) for c in result.candidates])

    def navigate(self, stance: BasePose) -> NavOutcome:
        """Play the next scripted outcome; a success lands the base near ``stance``."""
        self.goals.append(stance)
        status = self.nav_script.pop(0) if self.nav_script else 'succeeded'
        if status != 'succeeded':
            return NavOutcome(status, 104 if status == 'failed' else 0, f'simulated {status}')
        d = self.rng.standard_normal(3) * (self.sigma_xy_m, self.sigma_xy_m,
                                           self.sigma_yaw_rad)
        c, s = math.cos(stance.yaw), math.sin(stance.yaw)
        self.pose = BasePose(stance.x + c * d[0] - s * d[1], stance.y + s * d[0] + c * d[1],
                             stance.yaw + d[2])
        self._scale = 1.0 + self.scale_sigma * self.rng.standard_normal(3)
        self.time_s += 5.0
        return NavOutcome('succeeded')

    def send_twist(self, vx: float, vy: float, wz: float) -> None:
        """Set the commanded body-frame twist."""
        self._twist = (float(vx), float(vy), float(wz))
        self.twists.append(self._twist)

    def command_arm(self, joint_names, positions) -> None:
        """Record the arm command."""
        self.arm_commands.append((list(joint_names), [float(v) for v in positions]))

    def feedback(self, base: BasePose, distance_remaining_m: float) -> None:
        """Count the feedback messages."""
        self.feedbacks += 1

    def cancel_requested(self) -> bool:
        """Tell whether a cancel was requested (set :attr:`cancel`)."""
        return self.cancel

    def sleep(self, seconds: float) -> bool:
        """Advance the simulated time, moving the base by the current twist."""
        steps = max(1, int(round(seconds / SIM_STEP_S)))
        dt = seconds / steps
        for _ in range(steps):
            if any(self._twist):
                v = np.asarray(self._twist) * self._scale + (
                    self.rng.standard_normal(3) * self.velocity_noise)
                self.pose = integrate_twist(self.pose, *v, dt)
        self.time_s += seconds
        if self.on_sleep is not None:
            self.on_sleep(self)
        return True

    def now(self) -> float:
        """Return the simulated time (s)."""
        return self.time_s
