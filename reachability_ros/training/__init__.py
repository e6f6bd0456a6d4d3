"""Offline training of the stance samplers (torch; the runtime never imports this package).

* :mod:`.config`: validated dataset and training configs.
* :mod:`.data`, :mod:`.dataset`: the (grasp, stance) pairs and the sharded dataset.
* :mod:`.models`, :mod:`.train`, :mod:`.diagnostics`, :mod:`.plots`: models and trainer.
* :mod:`.checkpoint`, :mod:`.export`: checkpoints and their ONNX export.
* :mod:`.evaluate`: metrics of a trained sampler; :mod:`.cli`: the command line.

Importing this package (and :mod:`.config`, :mod:`.data`, :mod:`.dataset`) needs no torch.
"""

#: the commands of ``training/cli.py`` (``python -m reachability_ros <command>``)
COMMANDS = ("train", "dataset", "evaluate", "export", "parity", "toy-table")
