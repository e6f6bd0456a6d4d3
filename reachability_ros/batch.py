"""The ``propose-batch`` JSONL contract: one JSON answer per input line.

Input line: ``{"id", "position": [x, y, z], "orientation": [qx, qy, qz, qw], "frame_id",
"symmetric", "free_roll", "alternatives": [{"position", "orientation", "symmetric",
"free_roll"}, ...]}`` (``id``, ``frame_id``, the flags and ``alternatives`` optional).
Output line: ``{"id", "ok", "reason", "error", ...}`` with the rest of
``core/report.result_to_dict`` (``"error": null`` when a proposal was made, else
``invalid_request`` or ``internal`` and no candidates). Adding keys is allowed; renaming
or removing them is not. ``propose --json`` prints the same record for one grasp.
"""

from __future__ import annotations

import json
import os

from reachability_ros.core.errors import InvalidRequest, ReachabilityError


def error_record(reason: str, error: str, sampler: str = "",
                 request: dict | None = None) -> dict:
    """The JSON answer of a request that was not proposed for (the batch line schema).

    Args:
        reason: one line saying what was wrong.
        error: ``usage``, ``invalid_request``, ``config``, ``file``, ``interrupted`` or
            ``internal``.
        sampler: the sampler's name when the proposer was built, else "".
        request: the parsed request, if any.
    """
    return {"ok": False, "reason": reason, "error": error, "sampler": sampler,
            "request": request, "candidates": [], "funnel": {}, "timing_ms": {}}


def result_record(result) -> dict:
    """The JSON answer of a proposal: ``result_to_dict`` with ``"error": null``."""
    from reachability_ros.core.report import result_to_dict
    d = result_to_dict(result)
    return {"ok": d["ok"], "reason": d["reason"], "error": None, **d}


def dumps_record(record: dict, indent: int | None = None) -> str:
    """Strict JSON (no NaN); a record that cannot be written becomes an internal error."""
    try:
        return json.dumps(record, indent=indent, allow_nan=False)
    except ValueError as exc:
        rec = error_record(f"internal error: {exc}", "internal", str(record.get("sampler", "")))
        if "id" in record:
            rec = {"id": str(record["id"]), **rec}
        return json.dumps(rec, indent=indent)


# ------------------------------------------------------------------ input lines
def _json_id(value, lineno: int):
    """The record id as JSON-safe data: a string, or an int; anything else becomes its str."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return f"line{lineno}" if value is None else str(value)


def _parse_pose(rec: dict, where: str) -> tuple[tuple, tuple, bool, bool]:
    """Read ``position``, ``orientation``, ``symmetric`` and ``free_roll`` of one grasp.

    Raises:
        InvalidRequest: a pose that is not 3 and 4 numbers, a flag that is not a boolean.
    """
    values = {}
    for key, n in (("position", 3), ("orientation", 4)):
        v = rec.get(key)
        if not isinstance(v, list) or len(v) != n or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise InvalidRequest(f"{where}: {key!r} must be a list of {n} numbers")
        try:
            values[key] = tuple(float(x) for x in v)
        except OverflowError:
            raise InvalidRequest(f"{where}: {key!r} has a number too large for a "
                                 "float") from None
    flags = []
    for key in ("symmetric", "free_roll"):
        v = rec.get(key, False)
        if not isinstance(v, bool):
            raise InvalidRequest(f"{where}: {key!r} must be true or false, got {v!r}")
        flags.append(v)
    return values["position"], values["orientation"], flags[0], flags[1]


#: Keys of one entry of a batch line's ``alternatives`` (anything else is refused).
ALTERNATIVE_KEYS = ("position", "orientation", "symmetric", "free_roll")


def _parse_alternatives(value, where: str, frame_id: str) -> list:
    """Read a batch line's ``alternatives`` (checked in size before any entry).

    Raises:
        InvalidRequest: not a list, more than ``MAX_ALTERNATIVES`` entries, or an entry
            that is not an object of :data:`ALTERNATIVE_KEYS` with a valid pose (the
            reason names it: ``alternatives[36] (grasp_index 37)``).
    """
    from reachability_ros.core.freedom import entry_name, MAX_ALTERNATIVES
    from reachability_ros.core.types import Grasp
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: 'alternatives' must be a list of grasps "
                             '({"position": [...], "orientation": [...]}), got '
                             f"{type(value).__name__}")
    if len(value) > MAX_ALTERNATIVES:
        raise InvalidRequest(f"{where}: 'alternatives' has {len(value)} entries; at most "
                             f"{MAX_ALTERNATIVES} per line (split the set over several lines)")
    out = []
    for i, entry in enumerate(value, start=1):
        at = f"{where}: {entry_name(i)}"
        if not isinstance(entry, dict):
            raise InvalidRequest(f"{at}: expected a JSON object")
        unknown = sorted(str(k) for k in entry if k not in ALTERNATIVE_KEYS)
        if unknown:
            raise InvalidRequest(f"{at}: unknown key(s) {unknown}; an alternative has "
                                 f"{', '.join(ALTERNATIVE_KEYS)}")
        p, o, sym, free = _parse_pose(entry, at)
        out.append(Grasp(p, o, frame_id, symmetric=sym, free_roll=free))
    return out


def parse_line(line: str, lineno: int):
    """Parse one batch line into ``(id, Grasp, alternatives)``.

    Raises:
        InvalidRequest: anything but an object with a 3-number ``position`` and a
            4-number ``orientation`` (boolean ``symmetric`` / ``free_roll`` and a list of
            ``alternatives`` optional).
    """
    return _parse_record(_load_json(line, lineno), lineno)


def _load_json(line: str, lineno: int):
    """Decode one batch line's JSON; raise :class:`InvalidRequest` when it is not JSON."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"line {lineno}: not valid JSON ({exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise InvalidRequest(f"line {lineno}: not valid JSON ({type(exc).__name__})") from None


def _parse_record(rec, lineno: int):
    """:func:`parse_line` of an already decoded line."""
    from reachability_ros.core.types import Grasp
    if not isinstance(rec, dict):
        raise InvalidRequest(f"line {lineno}: expected a JSON object")
    gid = _json_id(rec.get("id"), lineno)
    where = f"line {lineno} (id {gid!r})"
    position, orientation, sym, free = _parse_pose(rec, where)
    frame_id = str(rec.get("frame_id", ""))
    alternatives = []
    if "alternatives" in rec:
        alternatives = _parse_alternatives(rec["alternatives"], where, frame_id)
    return gid, Grasp(position, orientation, frame_id, symmetric=sym,
                      free_roll=free), alternatives


# ------------------------------------------------------------------ a stream of lines
def answer_lines(proposer, fin, fout, seed: int) -> tuple[int, int, int, int]:
    """Write one JSON line per input line; return the counts (ok, no stance, bad, internal)."""
    import numpy as np

    n_ok = n_fail = n_bad = n_internal = 0
    for lineno, raw in enumerate(fin, start=1):
        gid = f"line{lineno}"
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest(f"line {lineno}: not UTF-8 text") from None
            if not line.strip():
                raise InvalidRequest(f"line {lineno}: empty line")
            rec_in = _load_json(line, lineno)
            if isinstance(rec_in, dict):  # the answer carries the id even when it is refused
                gid = _json_id(rec_in.get("id"), lineno)
            gid, grasp, alternatives = _parse_record(rec_in, lineno)
            rec = result_record(proposer.propose(grasp, rng=np.random.default_rng(
                [seed, lineno]), alternatives=alternatives))
            n_ok += rec["ok"]
            n_fail += not rec["ok"]
        except ReachabilityError as exc:
            rec = error_record(str(exc), "invalid_request", proposer.sampler_name)
            n_bad += 1
        except Exception as exc:  # a bug: this line says so, the batch goes on
            if os.environ.get("REACHABILITY_ROS_DEBUG"):
                raise
            rec = error_record(f"internal error: {type(exc).__name__}: {exc}", "internal",
                               proposer.sampler_name)
            n_internal += 1
        fout.write(dumps_record({"id": gid, **rec}) + "\n")
        fout.flush()
    return n_ok, n_fail, n_bad, n_internal
