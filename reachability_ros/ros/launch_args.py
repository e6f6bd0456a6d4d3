"""The decisions of ``launch/lekiwi.launch.py`` as plain functions (no launch imports).

Launch arguments (all strings on the command line):

- ``config``: the stance server's parameter file (``config/lekiwi.yaml`` layout);
- ``model``: ``''`` (default) keeps the config's ``proposal.model_path``;
  ``none`` runs without a model (``proposal.model_path`` cleared; sampler
  ``auto`` then uses the exact grid); anything else is the ONNX file (relative
  paths: working directory, then the package share);
- ``sampler``: ``''`` (default) keeps the config's ``proposal.sampler``, else one of
  :data:`SAMPLERS`;
- ``target_frame``: frame of the response (default ``map``);
- ``use_sim_time``: ``true``/``false`` (ROS's ``use_sim_time`` for the server and RViz);
- ``use_rviz``: also start RViz (``config/lekiwi.rviz``), fixed frame ``target_frame``.
"""

from __future__ import annotations

SAMPLERS = ('auto', 'model', 'grid', 'rejection')
#: The ``model`` value that means "no model".
NO_MODEL = 'none'
#: Accepted spellings of launch booleans (case-insensitive), as launch's own conditions take.
TRUE_WORDS = ('true', '1')
FALSE_WORDS = ('false', '0')


def parse_bool(name: str, value: str) -> bool:
    """Read a launch boolean (``true``/``false``/``1``/``0``, any case).

    Raises:
        ValueError: anything else, naming the argument.
    """
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f'launch argument {name}:={value!r} must be true or false')


def target_frame(value: str) -> str:
    """Return the ``target_frame`` argument as the node reads it (no blanks or leading '/')."""
    return str(value).strip().lstrip('/') or 'map'


def stance_server_parameters(config: str, model: str = '', sampler: str = '',
                             frame: str = 'map', use_sim_time: str = 'false') -> dict:
    """Return the parameter overrides that the launch file gives the stance server.

    Args:
        config: the parameter file (also passed as the node's ``config_file``).
        model: ``''`` (keep the config's), ``none`` (no model) or an ONNX path.
        sampler: ``''`` (keep the config's) or one of :data:`SAMPLERS`.
        frame: the ``target_frame`` argument.
        use_sim_time: the ``use_sim_time`` argument.

    Returns:
        Parameter name -> value (strings stay strings; ``use_sim_time`` is a bool).

    Raises:
        ValueError: an unknown sampler or a ``use_sim_time`` that is not a boolean.
    """
    overrides: dict = {'config_file': str(config), 'target_frame': target_frame(frame),
                       'use_sim_time': parse_bool('use_sim_time', use_sim_time)}
    model = str(model).strip()
    if model.lower() == NO_MODEL:
        overrides['proposal.model_path'] = ''
    elif model:
        overrides['proposal.model_path'] = model
    sampler = str(sampler).strip()
    if sampler:
        if sampler not in SAMPLERS:
            raise ValueError(f'launch argument sampler:={sampler!r} must be one of '
                             f'{", ".join(SAMPLERS)} (or empty: the config\'s)')
        overrides['proposal.sampler'] = sampler
    return overrides


def rviz_arguments(rviz_config: str, frame: str) -> list[str]:
    """Return rviz2's arguments: the display config and ``-f <target_frame>`` (fixed frame)."""
    return ['-d', str(rviz_config), '-f', target_frame(frame)]
