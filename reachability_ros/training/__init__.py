"""Offline training of the stance samplers (torch; the runtime never imports this package).

* :mod:`.config`: validated dataset and training configs.
* :mod:`.data`, :mod:`.dataset`: the (grasp, stance) pairs and the sharded dataset.
* :mod:`.models` (coupling flow, cVAE, nearest neighbour), :mod:`.flow_matching`
  (conditional flow matching with FiLM conditioning), :mod:`.mixture` (the amortized
  Gaussian mixture and its reverse-KL objective), :mod:`.target` (the mixture's tabulated
  targets), :mod:`.train`, :mod:`.diagnostics`, :mod:`.plots`: models and trainer.
* :mod:`.checkpoint`, :mod:`.export`: checkpoints and their ONNX export.
* :mod:`.evaluate`: metrics of a trained sampler; :mod:`.cli`: the command line.

Importing this package (and :mod:`.config`, :mod:`.data`, :mod:`.dataset`, :mod:`.target`)
needs no torch.
"""

#: the commands of ``training/cli.py`` (``python -m reachability_ros <command>``)
COMMANDS = ("train", "dataset", "evaluate", "export", "parity", "toy-table")
