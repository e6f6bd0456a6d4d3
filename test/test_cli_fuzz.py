"""No traceback and no warning noise for any user input: fuzzed CLI arguments and config keys.

The CLI runs in this process (``cli.main``), with every warning recorded: an exit code of 0,
1 or 2, nothing but one ``error: ...`` line for a refusal, and with ``--json`` exactly one
JSON object on stdout.
"""

import contextlib
import io
import json
import warnings

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from reachability_ros.cli import main
from reachability_ros.core.config import StanceConfig

NUMBERS = ["0", "1", "-1", "0.1", "2.5", "nan", "inf", "-inf", "1e308", "-1e308", "1e-320",
           "1e400", "abc", "", "1_0", "0x10", "\u0663", "--", "-0"]
COUNTS = ["0", "1", "3", "-5", "1.5", "1e3", "x", "1001", "64"]


def call(argv):
    """Run the CLI in-process: (exit code, stdout, stderr, recorded warnings)."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        code = main(argv)
    return code, out.getvalue(), err.getvalue(), [str(w.message) for w in caught]


def check(argv, code, out, err, caught):
    assert code in (0, 1, 2), (argv, code, err)
    assert not caught, (argv, caught)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    messages = [line for line in err.splitlines() if not line.startswith(("config: ",
                                                                          "model: "))]
    if code == 2:
        assert len(messages) == 1 and messages[0].startswith("error: "), (argv, err)
    if "--json" in argv and argv[0] == "propose":
        rec = json.loads(out)  # one object, nothing else on stdout
        assert isinstance(rec, dict) and rec["ok"] is (code == 0)
        assert (rec["error"] is None) is (code != 2), (argv, rec)


@st.composite
def propose_argv(draw):
    num = st.sampled_from(NUMBERS)
    argv = ["propose", "--position"] + [draw(num) for _ in range(3)]
    orientation = draw(st.sampled_from(["quat", "rpy", "both", "none", "short"]))
    if orientation in ("quat", "both"):
        argv += ["--quat"] + [draw(num) for _ in range(4)]
    if orientation in ("rpy", "both"):
        argv += ["--rpy"] + [draw(num) for _ in range(3)]
    if orientation == "short":
        argv += ["--quat", draw(num)]
    if draw(st.booleans()):
        argv.append("--degrees")
    if draw(st.booleans()):
        argv += ["--current-base"] + [draw(num) for _ in range(3)]
    for flag, pool in (("--top-k", COUNTS), ("--samples", COUNTS), ("--seed", COUNTS),
                       ("--sampler", ["grid", "model", "auto", "bogus"]),
                       ("--frame-id", ["map", "", "odom\n"])):
        if draw(st.booleans()):
            argv += [flag, draw(st.sampled_from(pool))]
    if "--sampler" not in argv:
        argv += ["--sampler", "grid"]
    if "--samples" not in argv:
        argv += ["--samples", "64"]
    if draw(st.booleans()):
        argv.append("--json")
    return argv


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(propose_argv())
def test_fuzzed_propose_arguments(argv):
    check(argv, *call(argv))


def _bad_values(default):
    values = [None, "zzz", [], {"a": 1}, True, -1e308, 1e308, float("nan"), -1]
    return [v for v in values if v != default]


CASES = [(key, value) for key, d in StanceConfig.describe().items()
         for value in _bad_values(d["default"])]


@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_config_keys_with_bad_values(tmp_path, key, value):
    """Every key with values of the wrong type, out of range or meaningless: a clear line."""
    node: dict = {}
    parts = key.split(".")
    leaf = node
    for p in parts[:-1]:
        leaf = leaf.setdefault(p, {})
    leaf[parts[-1]] = value
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"stance_server": {"ros__parameters": node}}))
    argv = ["propose", "--position", "1", "0", "0.1", "--rpy", "0", "90", "0", "--degrees",
            "--config", str(cfg), "--samples", "64", "--json"]
    check(argv, *call(argv))


@pytest.mark.parametrize("text", [
    b"\xff\xfe not utf-8",
    b"[" * 3000,
    b"key: [unclosed",
    b"- a list\n- not a mapping\n",
    b"!!python/object/apply:os.system ['true']",
    b"proposal: 3\n",
    b"robot: {camera: {hfov_deg: 400}}\n",
    b"proposal: {unknown_key: 1}\n",
], ids=["not utf-8", "deep nesting", "unclosed list", "a list", "python tag", "a number",
        "out of range", "unknown key"])
def test_broken_config_files(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(text)
    argv = ["propose", "--position", "1", "0", "0.1", "--rpy", "0", "90", "0", "--config",
            str(cfg)]
    code, out, err, caught = call(argv)
    check(argv, code, out, err, caught)
    assert code == 2


def test_a_directory_as_config(tmp_path):
    argv = ["propose", "--position", "1", "0", "0.1", "--rpy", "0", "0", "0", "--config",
            str(tmp_path)]
    code, out, err, caught = call(argv)
    check(argv, code, out, err, caught)
    assert code == 2
