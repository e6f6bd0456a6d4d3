"""The CLI's grasp freedom and grasp sets: --symmetric, --free-roll, batch alternatives."""

import json

from hypothesis import given, settings, strategies as st

from reachability_ros.batch import parse_line as _parse_line
from reachability_ros.core.errors import InvalidRequest
from reachability_ros.core.freedom import MAX_ALTERNATIVES, roll_between
from test_cli import run

POSE = {"position": [1.5, 0.0, 0.05], "orientation": [0.0, 1.0, 0.0, 0.0]}
SIDE = {"position": [1.5, 0.0, 0.12], "orientation": [0.0, 0.7071068, 0.0, 0.7071068]}


def line(**kw) -> str:
    return json.dumps({**SIDE, **kw})


def test_batch_lines_with_freedom_and_alternatives(tmp_path):
    bad_entry = [POSE] * 36 + [{"position": [1.5, 0.0, 0.05], "orientation": [0, 0, 0, 3]}]
    lines = [
        line(id="plain"),
        line(id="sym", symmetric=True),
        line(id="free", free_roll=True),
        line(id="set", alternatives=[{**POSE, "free_roll": True}, SIDE]),
        line(id="not-a-list", alternatives={"position": [1, 0, 0]}),
        line(id="too-many", alternatives=[POSE] * 10_000),
        line(id="entry-37", alternatives=bad_entry),
        line(id="flag", symmetric="yes"),
        line(id="typo", alternatives=[{**POSE, "free-roll": True}]),
    ]
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    res = run(["propose-batch", "--input", str(inp), "--output", str(outp), "--top-k", "3",
               "--sampler", "grid", "--samples", "256"])
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    recs = {r["id"]: r for r in map(json.loads, outp.read_text().splitlines())}
    assert list(recs) == [json.loads(x)["id"] for x in lines]
    for key in ("plain", "sym", "free", "set"):
        r = recs[key]
        assert r["ok"] and r["error"] is None, r["reason"]
        for c in r["candidates"]:
            assert set(c["tool_pose"]) == {"position", "orientation"}
    assert set(recs["plain"]["request"]) == {"position", "orientation", "frame_id"}
    assert recs["sym"]["request"]["symmetric"] is True
    assert recs["free"]["request"]["free_roll"] is True
    assert {c["grasp_index"] for c in recs["plain"]["candidates"]} == {0}
    assert all(c["grasp_index"] in (0, 1, 2) for c in recs["set"]["candidates"])
    assert recs["set"]["request"]["alternatives"][0]["free_roll"] is True
    for c in recs["free"]["candidates"]:  # a turn about the approach, nothing else
        assert c["tool_pose"]["position"] == SIDE["position"]
    for key, words in (("not-a-list", "'alternatives' must be a list"),
                       ("too-many", f"has 10000 entries; at most {MAX_ALTERNATIVES}"),
                       ("entry-37", "alternatives[36] (grasp_index 37): grasp orientation "
                                    "must be a unit quaternion"),
                       ("flag", "'symmetric' must be true or false"),
                       ("typo", "unknown key(s) ['free-roll']")):
        r = recs[key]
        assert not r["ok"] and r["error"] == "invalid_request" and words in r["reason"], r


def test_propose_free_roll_and_symmetric_flags():
    out = run(["propose", "--position", "1.5", "0", "0.12", "--rpy", "0", "90", "40",
               "--degrees", "--free-roll", "--json", "--top-k", "3"])
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["request"]["free_roll"] is True and rec["candidates"]
    turns = [roll_between(rec["request"]["orientation"], c["tool_pose"]["orientation"])
             for c in rec["candidates"]]
    assert any(abs(t) > 1e-3 for t in turns)  # the answer used the freedom
    table = run(["propose", "--position", "1.5", "0", "0.12", "--rpy", "0", "90", "40",
                 "--degrees", "--symmetric", "--top-k", "2"])
    assert table.returncode == 0 and "turn°" in table.stdout, table.stderr


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["position", "orientation", "symmetric", "free_roll", "alternatives"]),
    st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=3),
              st.lists(st.one_of(st.floats(), st.booleans()), max_size=5),
              st.lists(st.dictionaries(st.sampled_from(["position", "orientation",
                                                        "symmetric", "free_roll", "x"]),
                                       st.one_of(st.booleans(), st.floats(),
                                                 st.lists(st.floats(), max_size=5)),
                                       max_size=5), max_size=4)),
    max_size=5).map(json.dumps))
def test_batch_line_parser_fuzz_with_freedom(text):
    """A line with freedom fields parses or raises InvalidRequest: never anything else."""
    try:
        gid, grasp, alternatives = _parse_line(text, 1)
    except InvalidRequest:
        return
    assert isinstance(grasp.symmetric, bool) and isinstance(grasp.free_roll, bool)
    for g in alternatives:
        assert len(g.position) == 3 and len(g.orientation) == 4
