"""The no-ROS CLI: one grasp, JSONL batches with broken lines, no tracebacks."""

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from reachability_ros.cli import _parse_line
from reachability_ros.core.errors import InvalidRequest

CLI = [sys.executable, "-m", "reachability_ros"]
FAST = ["--sampler", "rejection", "--samples", "128", "--config", "config/lekiwi.yaml"]


def run(args, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=300, **kw)


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
        gid, grasp = _parse_line(line, 1)
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
    assert recs[0]["id"] == 5 and recs[2]["id"] == "nan" and recs[5]["reason"].endswith("empty line")
    assert all("sampler" in r and "request" in r for r in recs)


def test_negative_seed_is_a_usage_error():
    out = run(["propose", "--position", "2", "1", "0.1", "--rpy", "0", "90", "0", "--degrees",
               "--seed", "-1"] + FAST[:2])
    assert out.returncode == 2 and "seed must be >= 0" in out.stderr
    assert "Traceback" not in out.stderr
