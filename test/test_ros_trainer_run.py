"""The trainer node's decisions and training thread (plain, no ROS, no torch)."""

import json
import os
from pathlib import Path
import threading
import time

import pytest
from reachability_ros.core.errors import ConfigError
from reachability_ros.ros import trainer_run as tr
import yaml

REPO = Path(__file__).resolve().parents[1]


def strict_loader(path, overrides=None):
    """Stand in for training.config.load_train_config: YAML, known keys, integer epochs."""
    try:
        cfg = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f'config file {path} is not valid YAML: {exc}') from None
    for key, value in (overrides or {}).items():
        section, _, name = key.partition('.')
        if section not in cfg or name not in (cfg[section] or {}):
            raise ConfigError(f'unknown key {key!r}')
        if name == 'max_epochs' and not isinstance(value, int):
            raise ConfigError(f'{key} must be an integer, got {value!r}')
    return cfg


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'train.yaml'
    path.write_text('train:\n  max_epochs: 3\n  device: auto\nmodel:\n  family: flow\n')
    return path


def test_a_good_request_is_checked_and_its_output_folder_created(config, tmp_path):
    out = tmp_path / 'runs' / 'a' / 'b'
    job = tr.check_trainer_parameters(str(config), str(out), ['train.max_epochs=2'],
                                      load_config=strict_loader)
    assert job.config_path == config.resolve() and job.out_dir == out and out.is_dir()
    assert job.overrides == {'train.max_epochs': 2}
    assert list(out.iterdir()) == []  # the write test leaves nothing behind


@pytest.mark.parametrize('items, match', [
    (['train.max_epochs=abc'], 'must be an integer'),
    (['train.max_epoch=2'], "unknown key 'train.max_epoch'"),
    (['no_equals_sign'], 'must read key=value'),
])
def test_bad_overrides_are_refused_before_training(config, tmp_path, items, match):
    with pytest.raises(ConfigError, match=match):
        tr.check_trainer_parameters(str(config), str(tmp_path / 'out'), items,
                                    load_config=strict_loader)
    assert not (tmp_path / 'out').exists()  # nothing created for a refused request


def test_a_missing_or_broken_config_is_refused(tmp_path):
    with pytest.raises(ConfigError, match='set the training config'):
        tr.check_trainer_parameters('  ', '', [], load_config=strict_loader)
    with pytest.raises(ConfigError, match='not found'):
        tr.check_trainer_parameters(str(tmp_path / 'nope.yaml'), '', [],
                                    load_config=strict_loader)
    broken = tmp_path / 'broken.yaml'
    broken.write_text('train: [1, 2\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        tr.check_trainer_parameters(str(broken), str(tmp_path / 'o'), [],
                                    load_config=strict_loader)


def test_an_output_dir_that_cannot_be_created_is_refused(config, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    with pytest.raises(ConfigError, match='output_dir .* cannot be created'):
        tr.check_trainer_parameters(str(config), str(blocker / 'sub'), [],
                                    load_config=strict_loader)
    assert blocker.read_text() == 'x'
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        try:
            with pytest.raises(ConfigError, match='cannot be created or written'):
                tr.prepare_output_dir(locked)
        finally:
            locked.chmod(0o700)


def test_the_default_output_dir_is_runs_and_the_config_name(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = tr.check_trainer_parameters(str(config), '', [], load_config=strict_loader)
    assert job.out_dir == tmp_path / 'runs' / 'train'
    assert tr.default_output_dir('config/train_tiny.yaml') == str(Path('runs/train_tiny'))


def test_a_relative_config_is_found_in_the_package_share_or_source_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not in the working directory: the package's copy
    seen = []
    job = tr.check_trainer_parameters('config/train_tiny.yaml', str(tmp_path / 'o'), [],
                                      load_config=lambda p, o: seen.append(p))
    assert Path(seen[0]).is_file() and job.config_path.name == 'train_tiny.yaml'


def test_progress_json_and_line():
    import numpy as np
    progress = {'epoch': np.int64(3), 'max_epochs': 20, 'loss': np.float32(1.23456),
                'val_nll': float('nan'), 'elapsed_s': 12.34}
    data = json.loads(tr.progress_json(progress))
    assert data == {'epoch': 3, 'max_epochs': 20, 'loss': pytest.approx(1.23456),
                    'val_nll': 'nan', 'elapsed_s': 12.34}
    assert tr.progress_line(progress) == 'epoch 3/20: loss 1.2346, val_nll nan, 12.3 s'
    assert tr.progress_line({'epoch': 0}) == 'epoch 0/?: loss ?, val_nll ?, ? s'


def test_the_interrupted_message_says_where_the_checkpoint_is_and_how_to_export_it(tmp_path):
    ckpt = tmp_path / 'checkpoint.pt'
    ckpt.write_bytes(b'x')
    text = tr.interrupted_message(tmp_path, {'interrupted': True, 'checkpoint': str(ckpt)})
    assert 'complete epoch' in text and str(ckpt) in text
    assert tr.export_command(ckpt, tmp_path / 'model.onnx') in text
    assert 'export_checkpoint' in text and str(tmp_path / 'model.onnx') in text
    text = tr.interrupted_message(tmp_path, None)
    assert 'during an epoch' in text and str(ckpt) in text
    text = tr.interrupted_message(tmp_path / 'empty', None)
    assert 'before any checkpoint' in text and 'export_checkpoint' not in text
    assert '\n' not in text


def test_the_export_command_runs_the_export_function(tmp_path, monkeypatch):
    """The logged command is valid shell and Python: run it against a stand-in export."""
    pkg = tmp_path / 'reachability_ros' / 'training'
    pkg.mkdir(parents=True)
    (tmp_path / 'reachability_ros' / '__init__.py').write_text('')
    (pkg / '__init__.py').write_text('')
    (pkg / 'export.py').write_text(
        'def export_checkpoint(c, o):\n    open(o, "w").write("from " + c)\n')
    ckpt, onnx = tmp_path / "it's a ckpt.pt", tmp_path / 'model.onnx'
    import subprocess
    subprocess.run(tr.export_command(ckpt, onnx), shell=True, check=True, cwd=tmp_path,
                   env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert onnx.read_text() == f'from {ckpt}'


def test_failure_messages_are_one_line():
    assert tr.failure_message(ConfigError('train.device=cuda:\nno CUDA')).startswith(
        'bad configuration: train.device=cuda: no CUDA')
    assert 'pip install torch onnx' in tr.failure_message(ImportError('No module torch'))
    assert tr.failure_message(RuntimeError('boom')) == 'training failed: RuntimeError: boom'
    assert tr.failure_message(ValueError("type 'INTEGER', expecting 'STRING'"),
                              started=False).startswith('cannot start: ValueError: ')


def test_the_training_thread_runs_the_trainer_with_the_jobs_arguments(config, tmp_path):
    job = tr.TrainerJob(config, tmp_path, {'train.max_epochs': 2})
    calls = []

    def train(config_path, out_dir, overrides=None, log=print, *, progress=None,
              should_stop=None):
        calls.append((config_path, out_dir, overrides))
        for epoch in range(2):
            progress({'epoch': epoch, 'max_epochs': 2})
            log(f'epoch {epoch}')
            if should_stop():
                return {'interrupted': True}
        return {'interrupted': False, 'checkpoint': str(tmp_path / 'checkpoint.pt')}
    logs, progress = [], []
    run = tr.TrainingThread(train, job, logs.append, progress.append, lambda: False)
    assert not run.started
    run.start()
    assert run.wait(5.0) and run.done and run.started and run.error is None
    assert calls == [(str(config), str(tmp_path), {'train.max_epochs': 2})]
    assert logs == ['epoch 0', 'epoch 1'] and [p['epoch'] for p in progress] == [0, 1]
    assert run.summary['interrupted'] is False


def test_the_training_thread_stops_when_asked_and_keeps_errors(config, tmp_path):
    stop = threading.Event()

    def train(config_path, out_dir, overrides=None, log=print, *, progress=None,
              should_stop=None):
        for epoch in range(1000):
            time.sleep(0.01)
            if should_stop():
                return {'interrupted': True, 'epochs': epoch + 1}
        return {'interrupted': False}
    run = tr.TrainingThread(train, tr.TrainerJob(config, tmp_path, {}), print, print,
                            stop.is_set)
    run.start()
    time.sleep(0.05)
    stop.set()
    assert run.wait(tr.STOP_GRACE_S) and run.summary['interrupted'] is True

    def broken(*args, **kwargs):
        raise ConfigError('train.device is cuda but this torch has no CUDA')
    run = tr.TrainingThread(broken, tr.TrainerJob(config, tmp_path, {}), print, print,
                            stop.is_set)
    run.start()
    assert run.wait(5.0) and isinstance(run.error, ConfigError) and run.summary is None
