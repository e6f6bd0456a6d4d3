"""The sharded (grasp, stance) dataset on disk: generate (resumable), read, summarize.

A dataset folder holds ``manifest.json`` and shards ``train_00000.npz``,
``heldout_00000.npz``, ... Every shard is written atomically and recorded in the
manifest with its SHA-256, so a crash loses at most the shards in flight and a rerun
with the same options regenerates exactly those (and keeps the others).

Everything is deterministic given the seed: shard ``k`` of split ``s`` draws from
``SeedSequence([seed, s, k])``, independent of the worker count. The pairs are drawn
by ``training/data.py``; the options are
:class:`~reachability_ros.training.config.DataConfig`.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from reachability_ros.atomic import AtomicFile
from reachability_ros.core.canonical import FEATURIZATION_VERSION, condition_features
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.robot import WholeBodyModel
from reachability_ros.evaluation.grasps import grasp_descriptors, strata_index, water_fill

from .config import DataConfig, build_config
from .data import ForwardSampler, manifold_solver, manifold_targets, pilot_box

DATASET_FORMAT = "reachability_ros.dataset/2"
SPLITS = {"train": 0, "heldout": 1}
_PILOT_STREAM = 2


def make_output_dir(path: str | Path) -> Path:
    """Create the output directory ``path`` (and parents) and return it.

    Raises:
        ConfigError: it cannot be created (a file is in the way, no permission, ...).
    """
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output directory {str(out)!r}: "
                          f"{exc.strerror or exc}") from None
    return out


def data_config(config: DataConfig | Mapping[str, Any] | None = None) -> DataConfig:
    """Return ``config`` as a validated :class:`DataConfig` (a mapping may wrap it in ``data``).

    Raises:
        ConfigError: an unknown key or a bad value (named by its dotted path).
    """
    if isinstance(config, DataConfig):
        return config
    config = dict(config or {})
    if set(config) == {"data"}:
        config = dict(config["data"] or {})
    return build_config(DataConfig, config)


# ------------------------------------------------------------------------- shards
_WORKER: dict[str, Any] = {}  # per worker process: its robot, sampler and config
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(config: DataConfig, box: list, density_ref: float | None) -> None:
    robot = WholeBodyModel(config.robot)
    manifold = manifold_solver(robot, config.manifold)
    _WORKER["robot"] = robot
    _WORKER["sampler"] = ForwardSampler(robot, config, box=np.asarray(box), manifold=manifold,
                                        density_ref=density_ref)
    _WORKER["manifold"] = manifold
    _WORKER["config"] = config


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _make_shard(split: str, index: int, size: int, out_path: str) -> dict:
    """Generate one shard (in a worker), write it atomically, return its manifest entry."""
    cfg, sampler, robot = _WORKER["config"], _WORKER["sampler"], _WORKER["robot"]
    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, SPLITS[split], index]))
    strata, n_bins = cfg.strata, cfg.strata.n_bins
    want = int(np.ceil(cfg.oversample * size))
    parts, got, batches = [], 0, 0
    while got < want and batches < cfg.max_batches_per_shard:
        part = sampler.draw(cfg.batch_size, rng)
        parts.append(part)
        got += len(part["q"])
        batches += 1
    pool = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    h, e = grasp_descriptors(pool["T_grasp"])
    bins = strata_index(h, e, strata.height_edges_m, strata.elevation_edges_deg)
    sel = water_fill(bins, size, n_bins, rng)
    sel = sel[rng.permutation(len(sel))]
    data = {k: v[sel] for k, v in pool.items()}
    T = data["T_grasp"]
    arrays = {
        "cond": condition_features(T, robot.config.reach_m).astype(np.float32),
        "x": sampler.codec.encode(data["q"], T).astype(np.float32),
        "weight": data["weight"].astype(np.float32),
        "T_grasp": T[:, :3, :].copy(),
        "q": data["q"],
        "bin": bins[sel].astype(np.int16),
        "manipulability": data["manipulability"].astype(np.float32),
        "limit_margin": data["limit_margin"].astype(np.float32),
        "visibility_margin": data["visibility_margin"].astype(np.float32),
        "density_ratio": data["density_ratio"].astype(np.float32),
    }
    if _WORKER["manifold"] is not None:
        arrays["y"] = manifold_targets(_WORKER["manifold"], data["q"], robot.lower[3:5],
                                       robot.upper[3:5], T).astype(np.float32)
    out = Path(out_path)
    with AtomicFile(out) as f, open(f.tmp_path, "wb") as fh:
        np.savez(fh, **arrays)
    return {"file": out.name, "split": split, "index": index, "count": int(len(sel)),
            "sha256": _sha256(out), "candidates": int(batches * cfg.batch_size),
            "accepted": int(got),
            "bin_counts": np.bincount(bins[sel], minlength=n_bins).tolist(),
            "pool_bin_counts": np.bincount(bins, minlength=n_bins).tolist(),
            "seconds": time.perf_counter() - t0}


def _fingerprint(config: DataConfig, robot: WholeBodyModel, manifold) -> dict:
    """What must agree for a rerun to resume a dataset (the worker count need not)."""
    cfg = {k: v for k, v in config.to_dict().items() if k != "workers"}
    fp = {"format": DATASET_FORMAT, "config": cfg, "seed": config.seed,
          "robot": robot.config.name, "urdf_sha256": robot.urdf_sha256,
          "featurization": FEATURIZATION_VERSION, "joint_names": list(robot.joint_names),
          "reach_m": float(robot.config.reach_m)}
    fp["manifold"] = None if manifold is None else {
        "n_branches": int(manifold.n_branches), "lower": robot.lower[3:5].tolist(),
        "upper": robot.upper[3:5].tolist()}
    return fp


def _write_json(path: Path, obj: Any) -> None:
    with AtomicFile(path) as f:
        f.tmp_path.write_text(json.dumps(obj, indent=1))


def generate_dataset(config: DataConfig | Mapping[str, Any] | None, out_dir: str | Path,
                     seed: int | None = None, log: Callable[[str], None] = print,
                     progress: bool = True) -> Path:
    """Generate (or resume) a sharded, stratified dataset of (grasp, stance) pairs.

    Args:
        config: data options (a :class:`DataConfig`, or a mapping for :func:`data_config`).
        out_dir: output directory (created); holds ``manifest.json`` and the shards.
        seed: the dataset seed; default ``config.seed``.
        log: where progress lines and the final statistics go.
        progress: show a tqdm progress bar.

    Returns:
        Path of ``manifest.json``.

    Raises:
        ConfigError: bad options, an output directory that cannot be created, or one
            that holds a dataset made with other options, seed or robot description
            (use a fresh directory).
    """
    cfg = data_config(config)
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=int(seed))
    out = make_output_dir(out_dir)
    robot = WholeBodyModel(cfg.robot)
    manifold = manifold_solver(robot, cfg.manifold)
    if manifold is None and cfg.density != "forward":
        log(f"density = {cfg.density!r} needs the exact manifold, which is off or "
            "unavailable: the pairs keep the forward-sampling density")
    fp = _fingerprint(cfg, robot, manifold)
    man_path = out / "manifest.json"
    manifest = None
    if man_path.exists():  # resume, or refuse to touch what is not this dataset
        old = load_manifest(man_path)
        if {k: old.get(k) for k in fp} != json.loads(json.dumps(fp)):
            diff = [k for k in fp if json.loads(json.dumps(fp[k])) != old.get(k)]
            raise ConfigError(f"{out} holds a dataset made with other {diff}; use a "
                              "fresh output directory or delete it")
        manifest = old
    t_start = time.perf_counter()
    if manifest is None:
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _PILOT_STREAM]))
        box, pilot = pilot_box(robot, cfg, rng, manifold)
        manifest = dict(fp, box=box.tolist(), pilot=pilot, shards=[], complete=False)
        log(f"pilot: {pilot['visible']}/{pilot['candidates']} visible; proposal box "
            f"{np.round(box, 3).tolist()} ({pilot.get('volume_fraction', 1):.3f} of the limits)")
        _write_json(man_path, manifest)
    box = np.asarray(manifest["box"])
    density_ref = manifest["pilot"].get("density_ref")
    # shards to make, and the ones already there and intact
    todo, done = [], {}
    for entry in manifest["shards"]:
        p = out / entry["file"]
        if p.exists() and _sha256(p) == entry["sha256"]:
            done[(entry["split"], entry["index"])] = entry
    size = cfg.shard_size
    for split, total in (("train", cfg.train_pairs), ("heldout", cfg.heldout_pairs)):
        for k in range(int(np.ceil(total / size))):
            if (split, k) not in done:
                todo.append((split, k, min(size, total - k * size),
                             str(out / f"{split}_{k:05d}.npz")))
    manifest["shards"] = sorted(done.values(), key=lambda e: (SPLITS[e["split"]], e["index"]))
    if done:
        log(f"resuming: {len(done)} shards intact, {len(todo)} to make")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(t[2] for t in todo), unit="pair", unit_scale=True,
                   desc="dataset", file=sys.stderr)
    n_new = 0

    def _record(entry: dict) -> None:
        nonlocal n_new
        manifest["shards"].append(entry)
        manifest["shards"].sort(key=lambda e: (SPLITS[e["split"]], e["index"]))
        _write_json(man_path, manifest)
        n_new += entry["count"]
        if bar is not None:
            bar.update(entry["count"])

    workers = min(cfg.workers, max(1, len(todo)))
    if workers <= 1:
        _worker_init(cfg, box.tolist(), density_ref)
        for t in todo:
            _record(_make_shard(*t))
    else:
        ctx = mp.get_context("spawn")
        # one BLAS/OpenMP thread per worker: the workers are the parallelism
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update({k: "1" for k in _THREAD_VARS})
        try:
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(cfg, box.tolist(), density_ref)) as pool:
                futures = [pool.submit(_make_shard, *t) for t in todo]
                for fut in cf.as_completed(futures):
                    _record(fut.result())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t_start
    manifest["complete"] = True
    manifest["stats"] = dataset_stats(manifest)
    if n_new:
        manifest["stats"]["last_run"] = {"pairs": n_new, "seconds": wall,
                                         "pairs_per_s": n_new / wall, "workers": workers}
    _write_json(man_path, manifest)
    log(format_stats(manifest))
    return man_path


# ----------------------------------------------------------------------- reading
def _manifest_path(path: str | Path) -> Path:
    p = Path(path)
    return p / "manifest.json" if p.is_dir() else p


def load_dataset(path: str | Path, split: str = "train", verify: bool = False) -> dict:
    """Load a split of a dataset into arrays.

    Args:
        path: ``manifest.json`` or its directory.
        split: ``"train"`` or ``"heldout"``.
        verify: check every shard's SHA-256 against the manifest.

    Returns:
        ``cond (N, 7) float32``, ``x (N, 9) float32``, ``weight (N,) float32``,
        ``T_grasp (N, 4, 4) float64``, ``q (N, 8) float64``, ``bin (N,)``,
        ``manipulability``, ``limit_margin``, ``visibility_margin`` ``(N,)`` and,
        when the dataset has manifold coordinates, ``y (N, 2 + nb) float32``.

    Raises:
        ConfigError: no manifest there, an unknown split, or a corrupted shard.
    """
    man_path = _manifest_path(path)
    manifest = load_manifest(man_path)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; known: {sorted(SPLITS)}")
    parts: dict[str, list] = {}
    for entry in manifest["shards"]:
        if entry["split"] != split:
            continue
        p = man_path.parent / entry["file"]
        if not p.is_file():
            raise ConfigError(f"shard {p} of the dataset is missing; rerun python -m "
                              f"reachability_ros.training.cli dataset --out {man_path.parent} "
                              "with the same options to regenerate it")
        if verify and _sha256(p) != entry["sha256"]:
            raise ConfigError(f"shard {p} does not match its SHA-256 in the manifest; "
                              "delete it and rerun the dataset command to regenerate it")
        with np.load(p) as z:
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    if not parts:
        raise ConfigError(f"dataset {man_path} has no {split!r} shards")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    T = np.zeros((len(out["T_grasp"]), 4, 4))
    T[:, :3, :] = out["T_grasp"]
    T[:, 3, 3] = 1.0
    out["T_grasp"] = T
    return out


def load_manifest(path: str | Path) -> dict:
    """Read a dataset's manifest (``manifest.json`` or its folder) as a dict.

    Raises:
        ConfigError: no manifest there, or not a manifest of this generator.
    """
    man_path = _manifest_path(path)
    if not man_path.is_file():
        raise ConfigError(f"no dataset manifest at {str(man_path)!r}; make a dataset with "
                          "python -m reachability_ros.training.cli dataset --out DIR (train "
                          "makes one in <out>/data)")
    try:
        manifest = json.loads(man_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or "shards" not in manifest or "config" not in manifest:
        raise ConfigError(f"{man_path} is not a dataset manifest of reachability_ros")
    return manifest


def dataset_stats(manifest: Mapping[str, Any]) -> dict:
    """Counts per split and per (height, elevation) bin, and the acceptance rates."""
    strata = manifest["config"]["strata"]
    nh, ne = len(strata["height_edges_m"]) - 1, len(strata["elevation_edges_deg"]) - 1
    out = {}
    for split in SPLITS:
        es = [e for e in manifest["shards"] if e["split"] == split]
        if not es:
            continue
        counts = np.sum([e["bin_counts"] for e in es], axis=0).reshape(nh, ne)
        pool = np.sum([e.get("pool_bin_counts", e["bin_counts"]) for e in es],
                      axis=0).reshape(nh, ne)
        cand = sum(e["candidates"] for e in es)
        out[split] = {"pairs": int(counts.sum()), "candidates": int(cand),
                      "natural_bin_counts": pool.tolist(),
                      "accepted": int(sum(e["accepted"] for e in es)),
                      "bin_counts": counts.tolist(),
                      "shard_seconds": float(sum(e["seconds"] for e in es))}
    return out


def format_stats(manifest: Mapping[str, Any]) -> str:
    """Human-readable summary: pairs, acceptance, histograms of height and elevation."""
    stats = manifest.get("stats") or dataset_stats(manifest)
    strata = manifest["config"]["strata"]
    he, ee = strata["height_edges_m"], strata["elevation_edges_deg"]
    lines = []
    for split, s in stats.items():
        if split not in SPLITS:
            continue
        c = np.asarray(s["bin_counts"])
        nat = np.asarray(s.get("natural_bin_counts", c))
        lines.append(f"[{split}] {s['pairs']} pairs from {s['candidates']} candidates "
                     f"({s['accepted']} accepted before stratification, "
                     f"{s['accepted'] / max(s['candidates'], 1):.2%}); "
                     f"{s['pairs'] / max(s['shard_seconds'], 1e-9):.0f} pairs/s per worker")
        lines.append("  share per bin: natural (forward sampling, accepted) -> stratified")
        lines.append("  height (m)      " + "  ".join(
            f"[{he[i]:+.2f},{he[i + 1]:+.2f}) {nat[i].sum() / nat.sum():5.1%} -> "
            f"{c[i].sum() / c.sum():5.1%}" for i in range(len(he) - 1)))
        lines.append("  elevation (deg) " + "  ".join(
            f"[{ee[j]:+.0f},{ee[j + 1]:+.0f}) {nat[:, j].sum() / nat.sum():5.1%} -> "
            f"{c[:, j].sum() / c.sum():5.1%}" for j in range(len(ee) - 1)))
        lines.append("  stratified counts, height (rows) x elevation (cols):")
        lines.extend("    " + " ".join(f"{v:>7d}" for v in row) for row in c)
    last = stats.get("last_run")
    if last:
        lines.append(f"this run: {last['pairs']} pairs in {last['seconds']:.1f} s = "
                     f"{last['pairs_per_s']:.0f} pairs/s with {last['workers']} worker(s)")
    return "\n".join(lines)
