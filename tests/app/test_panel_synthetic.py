"""The synthetic-imagery panel's scores against the renderer's truth (app/panels/synthetic.py)."""
from __future__ import annotations

import numpy as np

from app.panels import synthetic as S


def _scene(side: int = 16) -> dict:
    """One scene: log depth falling from top (far) to bottom (near), a 'flower' block facing the
    camera, ground elsewhere facing up."""
    rows = np.arange(side, dtype=np.float32)[:, None].repeat(side, 1)
    log_depth = (2.0 - rows / side * 1.5)[None, None]
    ids = -np.ones((1, 1, side, side), np.int64)
    ids[..., 4:10, 4:10] = 3
    normals = np.zeros((1, 3, side, side), np.float32)
    normals[:, 1] = 1.0
    normals[:, :, 4:10, 4:10] = np.array([0.0, 0.0, 1.0], np.float32)[:, None, None]
    return {"log_depth": log_depth, "normals": normals, "ids": ids, "contours": np.zeros_like(log_depth)}


def test_judge__the_truth_itself_orders_every_pair_and_faces_every_flower_pixel_right():
    t = _scene()
    pred = {"log_depth": t["log_depth"], "normals_raw": t["normals"]}
    j = S.judge(pred, t, 0, np.random.default_rng(0), const=np.array([0.0, 1.0, 0.0]))
    assert j["pairs"] > 100 and j["pairs_right"] == j["pairs"]
    assert j["pixels"] == 36 and j["near"] == 36  # flower pixels only: the ground is not scored
    assert j["near_const"] == 0  # 'up' is 90° from a flower facing the camera
    # this scene's depth is exactly 'lower is nearer', so the rule gets every pair with a row gap right
    assert j["pairs_rule"] > 0.9 * j["pairs"]


def test_judge__a_reversed_depth_orders_every_pair_wrong_and_a_flat_one_counts_nothing():
    t = _scene()
    rev = S.judge({"log_depth": -t["log_depth"], "normals_raw": t["normals"]}, t, 0, np.random.default_rng(0))
    assert rev["pairs"] > 0 and rev["pairs_right"] == 0
    flat = S.judge({"log_depth": np.zeros_like(t["log_depth"]), "normals_raw": -t["normals"]}, t, 0, np.random.default_rng(0))
    assert flat["pairs_right"] == 0 and flat["near"] == 0


def test_words__say_when_the_directions_are_no_better_than_one_direction():
    s = {"scenes": 64, "depth_order": 0.95, "depth_order_rule": 0.83, "normals_near": 0.43, "normals_near_const": 0.44, "near_deg": 30.0}
    assert "no better than one direction" in S.words(s) and "95 times in 100" in S.words(s)
    assert "no better" not in S.words({**s, "normals_near": 0.6})
    assert " — " not in S.words(s)  # the header's plain part splits a verdict off at " — "
