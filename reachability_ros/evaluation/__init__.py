"""Evaluation beside the runtime core: ground truth, coverage metrics, toy robots, grasps.

Nothing a request needs lives here, and the runtime (``core/``, ``ros/``) never imports
this package. It imports only numpy, Pinocchio (through ``core``) and the standard
library: no torch, so benchmarks and tests use it without the training extra.

* :mod:`.ground_truth`: the exact feasible stance set of a grasp (uniform in the
  stance manifold's area), its modes, draws from it.
* :mod:`.coverage`: seed 000's coverage metrics (largest gap, KL, mode recall) and
  :func:`~.coverage.evaluate_samples` against a ground truth.
* :mod:`.quality`: the quality of exact stances by the ranking's terms, and a grasp's
  best exact quality (what the mixture family is trained toward and the model
  families are judged by).
* :mod:`.grasps`: the one generator of reachable and unreachable grasps for the
  benchmarks, the tests and the training data.
* :mod:`.toys`, :mod:`.toy_urdf`, :mod:`.toy_data`, :mod:`.toy_metrics`: the analytic
  toy robots of seed 000, their data, baselines and table.
"""
