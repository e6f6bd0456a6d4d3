"""What happened to each raw proposal: the outcome labels and their colours.

The pipeline labels every proposal with the stage that removed it (or ``kept``); the funnel
counts them, the plot and the RViz markers colour them. One table here serves all three.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Stages that remove a proposal, in pipeline order.
OUTCOMES = ("unreachable", "far_from_grasp", "refine_failed", "joint_limits", "fk_mismatch",
            "not_visible", "occluded", "low_visibility_margin", "base_collision", "arm_collision",
            "scene_occluded")
#: The stages that need a world (map or boxes); their funnel counts appear only with one.
WORLD_OUTCOMES = ("base_collision", "arm_collision", "scene_occluded")
#: Every label of a raw proposal; the pipeline codes a label as its index here.
LABELS = ("kept",) + OUTCOMES
LABELS_ARRAY = np.array(LABELS)
CODE = {name: i for i, name in enumerate(LABELS)}

#: RGBA (0-1) per outcome label.
OUTCOME_COLOURS = {
    "kept": (0.10, 0.80, 0.20, 0.9),
    "unreachable": (0.55, 0.55, 0.55, 0.5),
    "far_from_grasp": (0.75, 0.75, 0.75, 0.5),
    "refine_failed": (0.90, 0.15, 0.15, 0.7),
    "fk_mismatch": (0.60, 0.05, 0.05, 0.8),
    "joint_limits": (1.00, 0.55, 0.00, 0.8),
    "not_visible": (0.20, 0.40, 1.00, 0.7),
    "occluded": (0.65, 0.20, 0.85, 0.8),
    "low_visibility_margin": (0.30, 0.80, 0.90, 0.8),
    "base_collision": (0.45, 0.25, 0.10, 0.8),
    "arm_collision": (0.95, 0.35, 0.60, 0.8),
    "scene_occluded": (0.35, 0.10, 0.45, 0.8),
}


def outcome_colour(outcome: str) -> tuple[float, float, float, float]:
    """Return the RGBA colour of an outcome label; an unknown label gets a stable colour."""
    if outcome in OUTCOME_COLOURS:
        return OUTCOME_COLOURS[outcome]
    h = hashlib.sha256(outcome.encode()).digest()
    return (0.3 + 0.7 * h[0] / 255.0, 0.3 + 0.7 * h[1] / 255.0, 0.3 + 0.7 * h[2] / 255.0, 0.7)
