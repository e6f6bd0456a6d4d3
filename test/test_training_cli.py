"""The training command line (training/cli.py): help, the commands end to end, and every
user error as one line on stderr with exit code 2."""

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from reachability_ros.training import COMMANDS  # noqa: E402
from reachability_ros.training.cli import build_parser, main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "config" / "train_tiny.yaml")


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_and_argument_has_help(capsys):
    subs = _subparsers(build_parser())
    assert set(subs) == set(COMMANDS)
    for name, sub in subs.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.dest} has no help"
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: python -m reachability_ros {name}")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_main_command_line_forwards_every_training_command(name, capsys):
    from reachability_ros.cli import main as top_main
    with pytest.raises(SystemExit) as exc:
        top_main([name, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m reachability_ros {name}")


def _error(capsys, argv):
    """Run the CLI, expect exit 2 and exactly one line on stderr; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_user_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert "unknown override key 'train.max_epoch'" in _error(
        capsys, ["train", TINY, "--out", out, "--set", "train.max_epoch=2"])
    assert "train.max_epochs must be a number, got 'abc'" in _error(
        capsys, ["train", TINY, "--out", out, "--set", "train.max_epochs=abc"])
    assert "must read key=value" in _error(capsys, ["train", TINY, "--out", out, "--set", "x"])
    assert "not found" in _error(capsys, ["train", "nope.yaml", "--out", out])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {family: flow\n")
    assert "not valid YAML" in _error(capsys, ["train", str(bad), "--out", out])
    (tmp_path / "file").write_text("x")
    assert "cannot create the output directory" in _error(
        capsys, ["train", TINY, "--out", str(tmp_path / "file" / "run")])
    assert "no dataset manifest" in _error(
        capsys, ["train", TINY, "--out", out, "--set", "data.path=/nonexistent"])
    assert "does not exist" in _error(capsys, ["evaluate", "nope.onnx", "--data", out])
    assert "does not exist" in _error(capsys, ["export", "nope.pt", "--out", out + ".onnx"])
    assert "does not exist" in _error(capsys, ["parity", "nope.pt", "nope.onnx"])
    assert "unknown override key 'shard'" in _error(
        capsys, ["dataset", "--out", out, "--set", "shard=3"])
    assert not (tmp_path / "out").exists()  # nothing was started


def test_cuda_on_a_cpu_build_is_one_line(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this torch build has CUDA")
    assert "no usable CUDA" in _error(
        capsys, ["train", TINY, "--out", str(tmp_path), "--set", "train.device=cuda"])


def test_train_export_evaluate_parity(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", TINY, "--out", str(run), "--set", "train.max_epochs=1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1 and Path(summary["onnx"]).is_file()
    onnx = tmp_path / "exported.onnx"
    assert main(["export", str(run / "checkpoint.pt"), "--out", str(onnx)]) == 0
    assert onnx.is_file()
    capsys.readouterr()
    # a user's file is never replaced without --force
    before = onnx.read_bytes()
    assert "exists" in _error(capsys, ["export", str(run / "checkpoint.pt"), "--out",
                                       str(onnx)])
    assert onnx.read_bytes() == before
    assert main(["export", str(run / "checkpoint.pt"), "--out", str(onnx), "--force"]) == 0
    assert main(["parity", str(run / "checkpoint.pt"), str(onnx)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["evaluate", str(onnx), "--data", str(run / "data"), "--n-grasps", "5",
                 "--n-samples", "16", "--n-ground-truth", "2"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_grasps"] == 5 and metrics["gt_n_grasps"] == 2


def test_first_interrupt_stops_cleanly_second_aborts():
    from reachability_ros.training.cli import _stop_on_first_interrupt

    old = signal.getsignal(signal.SIGINT)
    try:
        stop = _stop_on_first_interrupt()
        assert not stop()
        signal.raise_signal(signal.SIGINT)
        assert stop()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, old)


def test_package_entry_point_routes_to_the_trainer(tmp_path):
    """``python -m reachability_ros train`` as a user types it: one line, exit 2."""
    out = subprocess.run([sys.executable, "-m", "reachability_ros", "train", TINY, "--out",
                          str(tmp_path), "--set", "train.max_epoch=2"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        out.stderr.strip()] and "train.max_epoch" in out.stderr
    assert "Traceback" not in out.stderr
