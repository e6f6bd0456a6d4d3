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

#: the commands of ``training/cli.py`` (``python -m reachability_ros <command>``), with the
#: one-line help that the main command line shows for them
COMMANDS = {
    "train": "train, evaluate and export a model from a config",
    "dataset": "generate or resume a training dataset",
    "evaluate": "evaluate an ONNX model on held-out grasps",
    "export": "export a training checkpoint to ONNX",
    "parity": "torch vs onnxruntime parity of an exported model",
    "toy-table": "the toy robots' benchmark table",
}
