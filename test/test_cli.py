"""The no-ROS CLI: one grasp, JSONL batches with broken lines, no tracebacks."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from reachability_ros.batch import answer_lines, parse_line as _parse_line
from reachability_ros.core.errors import InvalidRequest

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "reachability_ros"]
FAST = ["--sampler", "rejection", "--samples", "128", "--config",
        str(REPO / "config" / "lekiwi.yaml")]


def run(args, cwd=None, **kw):
    """Run the CLI of this tree (also from another working directory)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=300,
                          cwd=cwd or REPO, env=env, **kw)


def test_propose_json_and_plot(tmp_path):
    png = tmp_path / "p.png"
    out = run(["propose", "--position", "2.0", "1.0", "0.10", "--rpy", "0", "90", "0",
               "--degrees", "--top-k", "3", "--json", "--plot", str(png)] + FAST)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["ok"] and 1 <= len(rec["candidates"]) <= 3
    c = rec["candidates"][0]
    assert set(c["joints"]) == {"arm_shoulder_pan", "arm_shoulder_lift", "arm_elbow_flex",
                                "arm_wrist_flex", "arm_wrist_roll"}
    assert len(c["base"]) == 3 and c["visible"] is True and c["position_error_m"] <= 1e-4
    assert png.stat().st_size > 10_000


def test_propose_bad_input_is_a_clear_error():
    out = run(["propose", "--position", "nan", "0", "0.1", "--quat", "0", "0", "0", "1"] + FAST)
    assert out.returncode == 2
    assert "non-finite" in out.stderr and "Traceback" not in out.stderr


def test_batch_goes_on_after_broken_lines(tmp_path):
    lines = [
        '{"id": "g1", "position": [2.0, 1.0, 0.1], "orientation": [0, 0.7071068, 0, 0.7071068]}',
        "this is not json",
        '{"id": "g3", "position": [NaN, 0, 0.1], "orientation": [0, 0, 0, 1]}',
        '{"id": "g4", "position": [0, 0, 0.1], "orientation": [0, 0, 0, 0]}',
        '{"id": "g5", "position": [0, 0], "orientation": [0, 0, 0, 1]}',
        '[1, 2, 3]',
        '{"id": "g7", "position": [10000.0, -10000.0, 0.1], '
        '"orientation": [0, 0.7071068, 0, 0.7071068]}',
    ]
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    res = run(["propose-batch", "--input", str(inp), "--output", str(outp), "--top-k", "2"]
              + FAST)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    recs = [json.loads(l) for l in outp.read_text().splitlines()]
    assert len(recs) == len(lines)
    assert [r["ok"] for r in recs] == [True, False, False, False, False, False, True]
    assert recs[0]["id"] == "g1" and recs[1]["id"] == "line2" and recs[2]["id"] == "g3"
    for r in recs[1:6]:
        assert r["reason"] and r["candidates"] == []
    assert abs(recs[6]["candidates"][0]["base"][0] - 1e4) < 1.0


def test_a_refused_batch_line_answers_with_its_id():
    """Each line is decoded once; a refused line's answer still carries its id (the line
    number where it has none, or is no object), and nothing is proposed for it."""
    class NoProposals:
        sampler_name = "stand-in"

        def propose(self, *args, **kwargs):
            raise AssertionError("a refused line was proposed for")

    import io
    lines = [b'{"id": "g1", "position": [0, 0], "orientation": [0, 0, 0, 1]}',
             b'{"id": 7, "position": [0, 0, 0.1], "orientation": [0, 0, 0, 1], '
             b'"alternatives": [{"position": [0, 0, 0.1]}]}',
             b'{"position": [0, 0, 0.1], "orientation": [0, 0, 0, 1], "symmetric": 1}',
             b'[1, 2, 3]', b'{"id": "g5", "position": [0, 0, 0.1]',
             b'{"id": "g6", "position": [0, 0, 0.1], "orientation": [0, 0, 0, 1], '
             b'"free_roll": "yes"}']
    out = io.StringIO()
    counts = answer_lines(NoProposals(), io.BytesIO(b"\n".join(lines) + b"\n"), out, 0)
    recs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert counts == (0, 0, len(lines), 0)
    assert [r["id"] for r in recs] == ["g1", 7, "line3", "line4", "line5", "g6"]
    assert all(r["error"] == "invalid_request" and r["sampler"] == "stand-in" for r in recs)
    assert "'position' must be a list of 3 numbers" in recs[0]["reason"]
    assert "not valid JSON" in recs[4]["reason"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80),
                 st.dictionaries(st.sampled_from(["id", "position", "orientation", "x"]),
                                 st.one_of(st.none(), st.floats(), st.text(max_size=5),
                                           st.lists(st.one_of(st.floats(), st.booleans(),
                                                              st.text(max_size=3)), max_size=5)),
                                 max_size=4).map(json.dumps)))
def test_batch_line_parser_fuzz(line):
    """A batch line parses or raises InvalidRequest: never anything else."""
    try:
        gid, grasp, _ = _parse_line(line, 1)
    except InvalidRequest:
        return
    assert len(grasp.position) == 3 and len(grasp.orientation) == 4


def test_batch_survives_hostile_lines(tmp_path):
    """Huge integers, NaN ids, bad UTF-8, deep nesting, blank lines: one ok=false line each."""
    good = b'{"id": 5, "position": [2.0, 1.0, 0.1], "orientation": [0, 0.7071068, 0, 0.7071068]}'
    lines = [
        good,
        b'{"id": "big", "position": [1' + b"0" * 400 + b', 1, 0.1], "orientation": [0, 0, 0, 1]}',
        b'{"id": NaN, "position": [0, 0, 0.1], "orientation": [0, 0, 0, 0]}',
        b'{"id": "bad-utf8", "position": [0, 0, 0.1], "orientation": [0, 0, 0, 1]} \xff',
        b"[" * 100000,
        b"",
        good,
    ]
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_bytes(b"\n".join(lines) + b"\n")
    res = run(["propose-batch", "--input", str(inp), "--output", str(outp), "--top-k", "1",
               "--seed", "3"] + FAST)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    recs = [json.loads(l) for l in outp.read_text().splitlines()]
    assert len(recs) == len(lines)
    assert [r["ok"] for r in recs] == [True, False, False, False, False, False, True]
    assert recs[0]["id"] == 5 and recs[2]["id"] == "nan"
    assert recs[5]["reason"].endswith("empty line")
    assert all("sampler" in r and "request" in r for r in recs)


def test_negative_seed_is_a_usage_error():
    out = run(["propose", "--position", "2", "1", "0.1", "--rpy", "0", "90", "0", "--degrees",
               "--seed", "-1"] + FAST[:2])
    assert out.returncode == 2 and "seed must be >= 0" in out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------ files: no data loss
GOOD_LINE = ('{"id": "g1", "position": [2.0, 1.0, 0.1], '
             '"orientation": [0, 0.7071068, 0, 0.7071068]}\n')


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "relative"])
def test_batch_refuses_to_write_over_its_input(tmp_path, how):
    inp = tmp_path / "grasps.jsonl"
    inp.write_text(GOOD_LINE)
    out = {"same path": inp, "symlink": tmp_path / "link.jsonl",
           "hard link": tmp_path / "hard.jsonl", "relative": "grasps.jsonl"}[how]
    if how == "symlink":
        out.symlink_to(inp)
    elif how == "hard link":
        os.link(inp, out)
    res = run(["propose-batch", "--input", str(inp), "--output", str(out)] + FAST,
              cwd=tmp_path if how == "relative" else None)
    assert res.returncode == 2, res.stderr
    assert "is the --input file" in res.stderr and "Traceback" not in res.stderr
    assert inp.read_text() == GOOD_LINE  # untouched (the old code truncated it to 0 bytes)


def test_batch_output_appears_whole_or_not_at_all(tmp_path):
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(GOOD_LINE * 2)
    outp.write_text("previous results\n")
    os.chmod(outp, 0o640)
    # a failing run (the config is broken) leaves the previous results and no stray file
    bad = tmp_path / "bad.yaml"
    bad.write_text("proposal: {n_samples: -3}\n")
    res = run(["propose-batch", "--input", str(inp), "--output", str(outp), "--config",
               str(bad)])
    assert res.returncode == 2 and "n_samples" in res.stderr
    assert outp.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "in.jsonl", "out.jsonl"]
    # a good run replaces it in one piece, keeping the file's permissions
    res = run(["propose-batch", "--input", str(inp), "--output", str(outp)] + FAST)
    assert res.returncode == 0, res.stderr
    assert [json.loads(l)["ok"] for l in outp.read_text().splitlines()] == [True, True]
    assert stat.S_IMODE(outp.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "in.jsonl", "out.jsonl"]


def test_batch_stdin_to_stdout_still_works():
    res = run(["propose-batch", "--input", "-", "--output", "-"] + FAST, input=GOOD_LINE)
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec["id"] == "g1" and rec["ok"] is True and rec["error"] is None


@pytest.mark.parametrize("args, words", [
    (["--input", "missing.jsonl", "--output", "o.jsonl"], "cannot read --input"),
    (["--input", "-", "--output", "no/such/dir/o.jsonl"], "does not exist"),
    (["--input", "-", "--output", "."], "is a directory"),
])
def test_batch_file_errors_exit_2_before_any_work(tmp_path, args, words):
    res = run(["propose-batch"] + args + FAST, cwd=tmp_path, input="")
    assert res.returncode == 2 and words in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "config:" not in res.stderr  # nothing loaded
    assert len(res.stderr.strip().splitlines()) == 1


def _start_batch(tmp_path, outp):
    """A batch reading from a pipe that stays open: it answers, then waits for more."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(CLI + ["propose-batch", "--input", "-", "--output", str(outp)]
                            + FAST, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    proc.stdin.write(GOOD_LINE)
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the line is answered into the temporary file
        tmp = [p for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl.")]
        if tmp and tmp[0].stat().st_size > 0:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the batch never answered")


def test_ctrl_c_is_one_line_exit_130_and_keeps_the_old_output(tmp_path):
    outp = tmp_path / "out.jsonl"
    outp.write_text("previous results\n")
    proc = _start_batch(tmp_path, outp)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted"
    assert outp.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


# ------------------------------------------------------------------ paths
def test_relative_config_and_model_are_the_users_and_are_named(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "lekiwi.yaml").write_text(
        "stance_server:\n  ros__parameters:\n    proposal: {top_k: 2, n_samples: 64}\n")
    shutil.copy(REPO / "models" / "lekiwi_manifold.onnx", tmp_path / "my.onnx")
    res = run(["propose", "--position", "2", "1", "0.1", "--rpy", "0", "90", "0", "--degrees",
               "--config", "config/lekiwi.yaml", "--model", "./my.onnx", "--json"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert f"config: {tmp_path / 'config' / 'lekiwi.yaml'}" in lines
    assert f"model: {tmp_path / 'my.onnx'}" in lines
    rec = json.loads(res.stdout)
    assert len(rec["candidates"]) == 2 and rec["funnel"]["proposed"] == 64  # the user's file
    assert rec["sampler"].endswith(f"({tmp_path / 'my.onnx'})")


def test_a_missing_model_is_one_line_naming_it(tmp_path):
    res = run(["propose", "--position", "2", "1", "0.1", "--rpy", "0", "90", "0",
               "--model", "nothere.onnx"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: model file 'nothere.onnx' (--model) not found: looked "
                                  "in the working directory, then in the package's share "
                                  "directory")


# ------------------------------------------------------------------ exit codes and JSON
ARGS_HIGH = ["propose", "--position", "1", "0", "0.8", "--rpy", "0", "90", "0", "--degrees"]


def test_no_stance_exits_1_and_explains_with_the_robot_numbers():
    res = run(ARGS_HIGH + FAST + ["--json"])
    assert res.returncode == 1, res.stderr
    rec = json.loads(res.stdout)
    assert rec["ok"] is False and rec["error"] is None
    assert rec["reason"].startswith("unreachable: of 128 proposals")
    assert "The grasp is 0.80 m above the floor; the gripper reaches" in rec["reason"]
    assert "The front camera sees the gripper only between" in rec["reason"]


@pytest.mark.parametrize("extra, error, words", [
    (["--position", "1", "0", "0.1", "--quat", "0", "0", "0", "0"], "invalid_request",
     "unit quaternion"),
    (["--position", "1", "0", "0.1", "--quat", "1e308", "1e308", "0", "1"], "invalid_request",
     "its norm is 1.41421e+308"),
    (["--position", "1", "0", "0.1", "--rpy", "0", "0", "0", "--samples", "0"], "config",
     "n_samples = 0"),
    (["--position", "1", "0", "0.1", "--rpy", "0", "0", "0", "--top-k", "2.5"], "usage",
     "invalid int value"),
    (["--position", "1", "0", "0.1", "--rpy", "0", "0", "0", "--config", "nope.yaml"],
     "config", "not found"),
    (["--position", "1", "0", "0.1"], "invalid_request", "exactly one of --quat"),
])
def test_json_always_prints_one_object(extra, error, words):
    res = run(["propose", "--json"] + extra)
    assert res.returncode == 2
    rec = json.loads(res.stdout)  # exactly one JSON document
    assert rec["ok"] is False and rec["error"] == error and words in rec["reason"], rec
    assert set(rec) >= {"ok", "reason", "error", "sampler", "request", "candidates", "funnel",
                        "timing_ms"}
    assert "Traceback" not in res.stderr and "Warning" not in res.stderr


def test_a_huge_quaternion_is_refused_without_numpy_noise():
    res = run(["propose", "--position", "1", "0", "0.1", "--quat", "1e308", "0", "0", "1"]
              + FAST)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(
        "error: grasp orientation must be a unit quaternion")
    assert "Warning" not in res.stderr and "overflow" not in res.stderr


@pytest.mark.parametrize("plot", ["x.xyz", "noextension", "x.pgf"])
def test_an_unwritable_plot_format_is_refused_before_any_work(tmp_path, plot):
    res = run(["propose", "--position", "2", "1", "0.1", "--rpy", "0", "90", "0", "--degrees",
               "--plot", plot] + FAST, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith(f"error: --plot {plot!r}: use one of the extensions")
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""  # no work done
    assert list(tmp_path.iterdir()) == []


def test_batch_lines_carry_the_error_kind(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(GOOD_LINE + "not json\n"
                   + '{"position": [0, 0, 0.1], "orientation": [1e308, 1e308, 0, 1]}\n')
    res = run(["propose-batch", "--input", str(inp), "--output", "-"] + FAST)
    assert res.returncode == 0 and "Warning" not in res.stderr, res.stderr
    recs = [json.loads(l) for l in res.stdout.splitlines()]
    assert [r["error"] for r in recs] == [None, "invalid_request", "invalid_request"]
    assert "unit quaternion" in recs[2]["reason"]


def test_help_documents_the_exit_codes():
    res = run(["--help"])
    assert res.returncode == 0
    for words in ("0 a stance was found, 1 no stance", "2 bad input", "130 interrupted"):
        assert words in res.stdout
    text = " ".join(run(["propose", "--help"]).stdout.split())
    assert "Exit codes: 0 a stance, 1 no stance, 2 bad input, 130 interrupted" in text


def test_a_plot_path_taken_by_a_directory_is_the_one_json_answer(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "p.png").mkdir()  # the plot's name is taken by a directory
    res = run(["propose", "--position", "2", "1", "0.1", "--rpy", "0", "90", "0", "--degrees",
               "--json", "--plot", str(locked / "p.png")] + FAST)
    assert res.returncode == 2
    rec = json.loads(res.stdout)
    assert rec["error"] == "file" and "is a directory" in rec["reason"]
