"""The README's command-line examples run as written, in the environment the set-up makes.

Every ```bash block of README.md preceded by ``<!-- test/test_readme.py runs this block -->``
runs with ``bash -e`` in a fresh directory whose ``.venv`` is the environment running these
tests (``bash scripts/test.sh`` runs them with the repository's own ``.venv``).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARK = "<!-- test/test_readme.py runs this block -->"


def runnable_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(re.escape(MARK) + r"\s*```bash\n(.*?)```", text, flags=re.S)


def test_the_readme_marks_its_runnable_examples():
    blocks = runnable_blocks()
    assert blocks and all("python -m reachability_ros" in b for b in blocks)


@pytest.mark.skipif(not (Path(sys.prefix) / "bin" / "activate").exists(),
                    reason="the tests do not run in a virtual environment (no bin/activate)")
@pytest.mark.parametrize("block", runnable_blocks())
def test_readme_block_runs_as_written(tmp_path, block):
    (tmp_path / ".venv").symlink_to(sys.prefix)
    env = dict(os.environ, PYTHONPATH=str(REPO))  # this tree's package, wherever it runs
    res = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, text=True,
                         capture_output=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and "Warning" not in res.stderr, res.stderr
    if "room.png" in block:
        assert "base_collision" in res.stdout and (tmp_path / "room.png").is_file()
    if "stances.png" in block:
        assert (tmp_path / "stances.png").stat().st_size > 10_000
    if "stance.json" in block:
        assert json.loads((tmp_path / "stance.json").read_text())["ok"] is True
    if "no stance: exit code" in block:
        assert "no stance: exit code 1" in res.stdout
        assert "The grasp is 0.80 m above the floor" in res.stdout
    if "results.jsonl" in block:
        recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text()
                .splitlines()]
        assert [(r["id"], r["ok"]) for r in recs] == [("g1", True), ("g2", False)]
