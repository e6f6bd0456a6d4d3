"""Where the package's data files are, and how a user's relative path is resolved.

One resolver for every file a user names (config, model, URDF): an absolute path is
taken as it is; a relative one is looked up in the working directory first (the user's
own file wins), then in the package's data directories: the ROS share directory of an
installed package (``$AMENT_PREFIX_PATH/*/share/reachability_ros``, or the prefix this
module is installed under), then the source tree of a checkout. Nothing here imports ROS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "reachability_ros"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SOURCE_ROOT = PACKAGE_DIR.parent


def data_roots() -> list[Path]:
    """Directories that hold the package's ``config/``, ``models/`` and ``launch/``, in order.

    The share directories of every ament prefix that has the package, the share directory
    of the prefix this module is installed under (colcon or plain pip ``data_files``), and
    the source tree when this is a checkout.
    """
    roots: list[Path] = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            roots.append(Path(prefix) / "share" / PACKAGE)
    # <prefix>/lib/pythonX.Y/site-packages/reachability_ros -> <prefix>/share/reachability_ros
    roots.append(PACKAGE_DIR.parents[2] / "share" / PACKAGE)
    roots.append(Path(sys.prefix) / "share" / PACKAGE)
    if (SOURCE_ROOT / "config").is_dir():
        roots.append(SOURCE_ROOT)
    seen, out = set(), []
    for r in roots:
        if r.is_dir() and r.resolve() not in seen:
            seen.add(r.resolve())
            out.append(r)
    return out


def resolve_data_path(path: str | os.PathLike) -> Path:
    """Resolve a user-given file: absolute as is, else the working directory, else the package.

    Args:
        path: a file path; ``~`` is expanded.

    Returns:
        The first existing candidate, absolute; when none exists, the path relative to the
        working directory (so that the caller's error names what the user typed).
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.exists():
        return p.resolve()
    for root in data_roots():
        if (root / p).exists():
            return root / p
    return Path.cwd() / p
