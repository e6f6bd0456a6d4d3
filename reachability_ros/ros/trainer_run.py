"""The trainer node's decisions as plain functions, and the training thread.

The node (:mod:`.trainer_node`) reads its three parameters, refuses a bad
configuration here BEFORE training starts (one FATAL line, exit code 1), runs
:class:`TrainingThread` while it keeps spinning (so its parameters stay visible
and answered), publishes :func:`progress_json` on ``~/progress`` and logs
:func:`progress_line` for every epoch, and on SIGINT or SIGTERM asks the
training to stop and logs :func:`interrupted_message` (where the checkpoint is
and how to export it).

Exit codes: :data:`EXIT_OK` (trained and exported), :data:`EXIT_BAD_CONFIG`
(a bad configuration or a failed training, one FATAL line), and
``128 + signal number`` when interrupted (130 for SIGINT, 143 for SIGTERM;
the checkpoint of the best epoch so far is kept).

Nothing here imports ROS or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import math
import numbers
import os
from pathlib import Path
import shlex
import tempfile
import threading
from typing import Any, Callable, Mapping, Sequence

from reachability_ros.config_io import parse_overrides
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.paths import resolve_data_path

EXIT_OK = 0
EXIT_BAD_CONFIG = 1

#: How long an interrupted node waits for the training thread to write its checkpoint (s).
STOP_GRACE_S = 0.4

LoadConfig = Callable[..., Any]
Train = Callable[..., dict]


@dataclass(frozen=True)
class TrainerJob:
    """A checked training request.

    Attributes:
        config_path: the training config file (absolute, exists).
        out_dir: the output folder (created and writable).
        overrides: dotted-key overrides, already validated with the config.
    """

    config_path: Path
    out_dir: Path
    overrides: dict


def prepare_output_dir(path: str | os.PathLike) -> Path:
    """Create the output folder (with parents) and check that a file can be written in it.

    Args:
        path: the folder.

    Returns:
        The absolute folder.

    Raises:
        ConfigError: it cannot be created or written, with the reason.
    """
    out = Path(path).expanduser()
    out = out if out.is_absolute() else Path.cwd() / out
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix='.write_test_'):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f'output_dir {str(path)!r} cannot be created or written '
                          f'({reason}: {exc.filename or out}); choose another folder') from None
    return out


def default_output_dir(config: str) -> str:
    """Return the output folder used when ``output_dir`` is empty: ``runs/<config name>``."""
    return str(Path('runs') / Path(config).stem)


def check_trainer_parameters(config: str, output_dir: str, overrides: Sequence[str] | None,
                             load_config: LoadConfig | None = None) -> TrainerJob:
    """Check the trainer's parameters and its training config before anything runs.

    Args:
        config: the ``config`` parameter (a ``config/train_*.yaml`` file).
        output_dir: the ``output_dir`` parameter (empty: :func:`default_output_dir`).
        overrides: the ``overrides`` parameter (``key=value`` strings).
        load_config: ``(path, overrides) -> config``, raising ``ConfigError`` for a
            broken file, an unknown key or a bad value (default
            ``reachability_ros.training.config.load_train_config``).

    Returns:
        The checked job.

    Raises:
        ConfigError: no config, a missing or invalid config file, a malformed
            or unknown override, an output folder that cannot be created.
    """
    config = str(config or '').strip()
    if not config:
        raise ConfigError('set the training config: --ros-args -p config:=config/'
                          'train_tiny.yaml -p output_dir:=runs/tiny')
    path = resolve_data_path(config)
    if not Path(path).is_file():
        raise ConfigError(f'training config {config!r} not found (looked at {path})')
    parsed = parse_overrides(list(overrides or []))
    if load_config is None:
        from reachability_ros.training.config import load_train_config as load_config
    load_config(str(path), parsed or None)
    out = prepare_output_dir(str(output_dir or '').strip() or default_output_dir(config))
    return TrainerJob(Path(path).resolve(), out, parsed)


def _plain(value: Any) -> Any:
    """Return numbers as plain int/float (non-finite as strings), anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def progress_json(progress: Mapping[str, Any]) -> str:
    """Return one epoch's progress as the strict JSON text of ``~/progress``.

    Args:
        progress: ``{epoch, max_epochs, loss, val_nll, elapsed_s, ...}`` from the trainer.

    Returns:
        A JSON object with the same keys (non-finite numbers as strings).
    """
    plain = {str(k): _plain(v) for k, v in progress.items()}
    return json.dumps(plain, allow_nan=False, default=str, sort_keys=True)


def progress_line(progress: Mapping[str, Any]) -> str:
    """Return one epoch's progress as a log line (missing values shown as '?')."""
    def fmt(key: str, spec: str) -> str:
        value = progress.get(key)
        try:
            return format(float(value), spec)
        except (TypeError, ValueError):
            return '?'
    epoch = progress.get('epoch', '?')
    total = progress.get('max_epochs', '?')
    return (f"epoch {epoch}/{total}: loss {fmt('loss', '.4f')}, "
            f"val_nll {fmt('val_nll', '.4f')}, {fmt('elapsed_s', '.1f')} s")


def checkpoint_path(out_dir: Path, summary: Mapping[str, Any] | None = None) -> Path:
    """Return a run's checkpoint: the summary's ``checkpoint``, else ``out_dir/checkpoint.pt``."""
    if summary and summary.get('checkpoint'):
        return Path(str(summary['checkpoint']))
    return Path(out_dir) / 'checkpoint.pt'


def export_command(checkpoint: Path, onnx: Path) -> str:
    """Return the shell command that exports a checkpoint to ONNX."""
    code = ('from reachability_ros.training.export import export_checkpoint; '
            f'export_checkpoint({json.dumps(str(checkpoint))}, {json.dumps(str(onnx))})')
    return f'python3 -c {shlex.quote(code)}'


def interrupted_message(out_dir: Path, summary: Mapping[str, Any] | None,
                        checkpoint_exists: bool | None = None) -> str:
    """Return the log line of an interrupted training: where the checkpoint is, how to export it.

    Args:
        out_dir: the output folder.
        summary: the trainer's summary if it returned in time (``interrupted`` True), else None.
        checkpoint_exists: whether the checkpoint file exists (default: look).

    Returns:
        One line.
    """
    ckpt = checkpoint_path(out_dir, summary)
    exists = ckpt.is_file() if checkpoint_exists is None else checkpoint_exists
    when = 'stopped after a complete epoch' if summary else 'stopped during an epoch'
    if not exists:
        return (f'training interrupted ({when}) before any checkpoint was written; '
                f'nothing to export in {out_dir}')
    command = export_command(ckpt, Path(out_dir) / 'model.onnx')
    return (f'training interrupted ({when}); the checkpoint of the best epoch so far is kept: '
            f'{ckpt}; export it to ONNX with: {command}')


class TrainingThread:
    """Run one training on a daemon thread and keep its outcome.

    Args:
        train: ``train_from_config(config_path, out_dir, overrides, log=..., *,
            progress=..., should_stop=...) -> summary``.
        job: the checked job.
        log: line logger (called from the training thread).
        progress: per-epoch callback (called from the training thread).
        should_stop: polled by the training once per epoch.
    """

    def __init__(self, train: Train, job: TrainerJob, log: Callable[[str], None],
                 progress: Callable[[Mapping[str, Any]], None],
                 should_stop: Callable[[], bool]) -> None:
        self._train = train
        self._job = job
        self._log = log
        self._progress = progress
        self._should_stop = should_stop
        self.summary: dict | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name='training', daemon=True)

    def start(self) -> None:
        """Start training."""
        self._thread.start()

    @property
    def started(self) -> bool:
        """Tell whether :meth:`start` was called."""
        return self._thread.ident is not None

    def _run(self) -> None:
        try:
            self.summary = self._train(str(self._job.config_path), str(self._job.out_dir),
                                       self._job.overrides or None, log=self._log,
                                       progress=self._progress, should_stop=self._should_stop)
        except BaseException as exc:  # reported by the node, never raised in this thread
            self.error = exc
        finally:
            self._done.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the training to end; return whether it has."""
        return self._done.wait(timeout_s)

    @property
    def done(self) -> bool:
        """Tell whether the training has ended (returned or raised)."""
        return self._done.is_set()


def failure_message(exc: BaseException, started: bool = True) -> str:
    """Return the FATAL line of a training that could not start (``started`` False) or failed."""
    if isinstance(exc, ImportError):
        return ('the trainer needs torch and onnx (pip install torch onnx; README, On the '
                f'robot): {type(exc).__name__}: {exc}')
    if isinstance(exc, ConfigError):
        return ' '.join(f'bad configuration: {exc}'.split())
    what = 'training failed' if started else 'cannot start'
    return ' '.join(f'{what}: {type(exc).__name__}: {exc}'.split())
