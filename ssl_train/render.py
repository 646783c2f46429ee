"""A batched procedural renderer of flower scenes with free per-pixel labels (#30: the synthetic
imagery of Ren & Lee, CVPR 2018, without a game engine).

Every scene: 1..N flowers (petals as flat ellipsoids arranged around an ellipsoidal disc, a stem,
0..K leaves) standing on a textured ground under a sky, or in front of a blurred backdrop; random
plausible colours, procedural texture (petal veins and a darker or lighter base, disc seeds, leaf
midribs, ground noise), a camera whose elevation goes from side view (a few degrees) to straight
above, and a random sun direction. ``render`` returns, per scene:

=========  ==================  =====================================================================
rgb        (B, 3, S, S) float  shaded colour in [0, 1]
depth      (B, 1, S, S) float  camera-space z-depth in scene units (the ground is the plane z = 0;
                               flowers are 0.3..1.0 tall); sky and backdrop at the scene's ``far``
normals    (B, 3, S, S) float  unit surface normals in camera coordinates: x right, y up, z towards
                               the camera; every one faces its pixel's ray (z < 0 happens only at
                               silhouettes away from the centre: perspective); sky/backdrop (0, 0, 1)
contours   (B, 1, S, S) float  1 where the visible object changes, on the occluding (nearer) side
ids        (B, 1, S, S) int64  visible object: primitive index within the scene, -1 ground, -2 sky
=========  ==================  =====================================================================

**How.** Every object is an ellipsoid, so a ray hit is one quadratic and its normal is exact. The
camera ray of pixel (row, col) is ``d = g0 + col·g1 + row·g2`` (forward component 1, so the ray
parameter *is* the z-depth), and in an ellipsoid's unit-sphere frame ``d' = A·d`` is affine in
(col, row) too: per primitive 12 numbers (o', p0, p1, p2) describe every ray. Pass 1 casts rays only
through each primitive's screen-space bounding box (the projected corners of its oriented box, exact
pixel lists via ``repeat_interleave``: no work outside it), packs (depth bits << 24 | primitive) in
one int64 and keeps the per-pixel minimum with ``scatter_reduce(amin)`` — a z-buffer in one op,
deterministic on CPU and CUDA (min does not depend on order). Pass 2 shades only the winning hit of
each covered pixel (normal, texture, wrap-lit Lambert shading), and the background analytically
(ground with soft head shadows fading into haze, sky gradient, or a blurred backdrop). The hit uses
the numerically stable form ``h = 1 − |o' − (b/a)·d'|²`` (thin petals have 1/radius ≈ 200, where
``b² − a·c`` cancels catastrophically in float32); pass 2 recomputes the winning hit point in
float64 for the normal. No shadows cast between flowers, no inter-reflection, no anti-aliasing
beyond a light blur of the colour image (depth, normals and contours stay exact per pixel).

Every random number comes from the caller's ``torch.Generator`` (and its device): the same generator
state gives the same scenes, bit for bit. The code is device-agnostic.

Command: ``python -m ssl_train.render --bench`` writes reports/render-bench.json and .md (scenes/s at
96 and 128 px); ``--gallery reports/render-gallery.jpg`` a grid of RGB | depth | normals | contours.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .errors import UserError

__all__ = ["RenderConfig", "SceneParams", "Scene", "sample_scenes", "rasterize", "render", "contours_from_ids", "main",
           "PETAL", "DISC", "STEM", "LEAF", "GROUND_ID", "SKY_ID", "MIN_SIZE", "MAX_SIZE"]

PETAL, DISC, STEM, LEAF = 0, 1, 2, 3  # primitive kinds
GROUND_ID, SKY_ID = -1, -2  # ids of the background (sky and blurred backdrop share SKY_ID)
MIN_SIZE, MAX_SIZE = 16, 1024  # image side in px
NEAR = 0.05  # nearest hit, scene units
_IDX_BITS = 24  # low bits of a z-buffer key: the primitive (2^24 - 1 = background)
_BG = (1 << _IDX_BITS) - 1
_NO_HIT = torch.iinfo(torch.int64).max


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
# name → (lowest allowed, highest allowed) for each range setting; a range (lo, hi) needs lo ≤ hi
_RANGES: dict[str, tuple[float, float]] = {
    "flowers": (1, 8),
    "petals": (3, 24),
    "leaves": (0, 4),
    "elevation_deg": (0.0, 90.0),
}


@dataclass(frozen=True)
class RenderConfig:
    """What scenes look like. Ranges are inclusive (lo, hi); counts are drawn uniformly per scene
    (flowers) or per flower (petals, leaves)."""

    image_size: int = 96  # side in px
    flowers: tuple[int, int] = (1, 4)  # flowers per scene
    petals: tuple[int, int] = (5, 12)  # petals per flower
    leaves: tuple[int, int] = (0, 2)  # leaves per flower
    elevation_deg: tuple[float, float] = (5.0, 90.0)  # camera elevation: 0 side view, 90 straight down
    blurred_background: float = 0.35  # probability of a blurred backdrop instead of ground and sky
    rgb_blur: float = 0.5  # Gaussian σ in px on the colour image (soft edges, like a lens); 0: none
    noise: float = 0.01  # σ of additive sensor noise on the colour image

    def validate(self) -> None:
        """Raise ``UserError`` (one line: the setting and its allowed range) for impossible settings."""
        if not isinstance(self.image_size, int) or not MIN_SIZE <= self.image_size <= MAX_SIZE:
            raise UserError(f"render image_size={self.image_size} must be {MIN_SIZE}..{MAX_SIZE} px")
        for name, (lo_ok, hi_ok) in _RANGES.items():
            v = getattr(self, name)
            if not (isinstance(v, (tuple, list)) and len(v) == 2):
                raise UserError(f"render {name}={v!r} must be a range lo,hi with {lo_ok:g} ≤ lo ≤ hi ≤ {hi_ok:g}")
            lo, hi = v
            if not (lo_ok <= lo <= hi <= hi_ok):
                raise UserError(f"render {name}={lo:g},{hi:g} must be a range lo,hi with {lo_ok:g} ≤ lo ≤ hi ≤ {hi_ok:g}")
        if not 0.0 <= self.blurred_background <= 1.0:
            raise UserError(f"render blurred_background={self.blurred_background:g} must be a probability in 0..1")
        if not 0.0 <= self.rgb_blur <= 3.0:
            raise UserError(f"render rgb_blur={self.rgb_blur:g} must be 0..3 px")
        if not 0.0 <= self.noise <= 0.2:
            raise UserError(f"render noise={self.noise:g} must be 0..0.2")

    @property
    def max_primitives(self) -> int:
        """Primitive slots per scene: per flower the petals, disc, stem and leaves."""
        return self.flowers[1] * (self.petals[1] + 2 + self.leaves[1])


# --------------------------------------------------------------------------------------------
# scene description
# --------------------------------------------------------------------------------------------
@dataclass
class SceneParams:
    """Everything ``rasterize`` needs, for B scenes with P primitive slots each. World frame: z up,
    ground z = 0, scene units. Tests build these by hand (e.g. one sphere)."""

    cam_origin: torch.Tensor  # (B, 3) camera position
    cam_right: torch.Tensor  # (B, 3) unit
    cam_up: torch.Tensor  # (B, 3) unit
    cam_forward: torch.Tensor  # (B, 3) unit, viewing direction
    tan_half_fov: torch.Tensor  # (B,) tan of half the field of view (square image)
    light: torch.Tensor  # (B, 3) unit direction towards the sun
    ambient: torch.Tensor  # (B,) share of light that is ambient, 0..1
    centers: torch.Tensor  # (B, P, 3)
    axes: torch.Tensor  # (B, P, 3, 3) columns: the ellipsoid's local x, y, z axes (orthonormal)
    radii: torch.Tensor  # (B, P, 3) semi-axes along the local axes
    colors: torch.Tensor  # (B, P, 3) albedo in [0, 1]
    colors2: torch.Tensor  # (B, P, 3) second albedo (petal base, leaf vein)
    kinds: torch.Tensor  # (B, P) int64: PETAL, DISC, STEM or LEAF
    active: torch.Tensor  # (B, P) bool: unused slots are False
    blurred: torch.Tensor  # (B,) bool: backdrop instead of ground and sky
    far: torch.Tensor  # (B,) depth of sky and backdrop
    ground_tex: torch.Tensor  # (B, 3, T, T) ground albedo over world x, y in [-4, 4]
    grass_tex: torch.Tensor  # (B, 1, G, G) fine brightness noise, tiled every 0.5 units
    sky: torch.Tensor  # (B, 2, 3) horizon and zenith colours
    backdrop: torch.Tensor  # (B, 3, b, b) low-resolution backdrop colours (blurred on upsampling)
    shadows: torch.Tensor | None = None  # (B, F, 3) soft round shadows on the ground: x, y, radius (0: none)

    @property
    def batch(self) -> int:
        return self.centers.shape[0]


@dataclass
class Scene:
    """Rendered scenes; see the module docstring for units."""

    rgb: torch.Tensor  # (B, 3, S, S)
    depth: torch.Tensor  # (B, 1, S, S)
    normals: torch.Tensor  # (B, 3, S, S)
    contours: torch.Tensor  # (B, 1, S, S)
    ids: torch.Tensor  # (B, 1, S, S) int64


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def _u(gen: torch.Generator, shape: Sequence[int], lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Uniform [lo, hi) of ``shape`` on the generator's device."""
    return torch.rand(tuple(shape), generator=gen, device=gen.device) * (hi - lo) + lo


def _count(gen: torch.Generator, shape: Sequence[int], lo: int, hi: int) -> torch.Tensor:
    """Integers uniform in lo..hi (inclusive), drawn as floats so that every range costs the same draws."""
    return (_u(gen, shape) * (hi - lo + 1)).floor().long().clamp_max(hi - lo) + lo


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Hue (turns), saturation, value, each (...) in [0, 1] → RGB (..., 3)."""
    k = torch.tensor([5.0, 3.0, 1.0], device=h.device)
    kk = (k + h.unsqueeze(-1) * 6.0) % 6.0
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * torch.clamp(torch.minimum(kk, 4.0 - kk), 0.0, 1.0)


def _frame(axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors completing the unit ``axis`` (..., 3) to an orthonormal frame (from its
    tilt and azimuth, so no special case at the pole)."""
    tilt = torch.acos(axis[..., 2].clamp(-1.0, 1.0))
    az = torch.atan2(axis[..., 1], axis[..., 0])
    e1 = torch.stack([torch.cos(tilt) * torch.cos(az), torch.cos(tilt) * torch.sin(az), -torch.sin(tilt)], -1)
    e2 = torch.stack([-torch.sin(az), torch.cos(az), torch.zeros_like(az)], -1)
    return e1, e2


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def sample_scenes(cfg: RenderConfig, batch: int, gen: torch.Generator) -> SceneParams:
    """Draw ``batch`` random scenes from ``gen`` (on its device). The number and order of draws is
    fixed by ``cfg`` and ``batch`` alone, so the same generator state gives the same scenes."""
    cfg.validate()
    dev = gen.device
    B, NF = batch, cfg.flowers[1]
    NP, NL = cfg.petals[1], cfg.leaves[1]
    two_pi = 2 * math.pi

    # camera: orbit around a target above the origin
    el = torch.deg2rad(_u(gen, (B,), *cfg.elevation_deg))
    az = _u(gen, (B,), 0, two_pi)
    dist = _u(gen, (B,), 1.6, 2.8)
    target = torch.stack([torch.zeros(B, device=dev), torch.zeros(B, device=dev), _u(gen, (B,), 0.3, 0.6)], -1)
    to_cam = torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], -1)
    origin = target + dist[:, None] * to_cam
    forward = -to_cam
    right = torch.stack([-torch.sin(az), torch.cos(az), torch.zeros_like(az)], -1)
    up = torch.cross(right, forward, dim=-1)
    tan_half = torch.tan(torch.deg2rad(_u(gen, (B,), 18.0, 25.0)))
    # the sun, from 20° to 80° above the horizon
    sun_el, sun_az = torch.deg2rad(_u(gen, (B,), 20.0, 80.0)), _u(gen, (B,), 0, two_pi)
    light = torch.stack([torch.cos(sun_el) * torch.cos(sun_az), torch.cos(sun_el) * torch.sin(sun_az), torch.sin(sun_el)], -1)
    ambient = _u(gen, (B,), 0.25, 0.45)

    # flowers: where, how tall, which way the head faces (towards the camera, more or less)
    n_flowers = _count(gen, (B,), *cfg.flowers)
    f_on = torch.arange(NF, device=dev)[None] < n_flowers[:, None]  # (B, NF)
    spread = 0.25 + 0.2 * n_flowers.float()  # more flowers, more room
    base_xy = (_u(gen, (B, NF, 2), -1, 1)) * spread[:, None, None]
    base_xy[:, 0] *= 0.3  # the first flower stands near the middle: most photos have one in focus
    height = _u(gen, (B, NF), 0.3, 1.0)
    height[:, 0] = target[:, 2] + (height[:, 0] - 0.65) * 0.3
    lean = _u(gen, (B, NF, 2), -0.12, 0.12)
    head = torch.cat([base_xy + lean, height[..., None]], -1)  # (B, NF, 3)
    tilt = _u(gen, (B, NF), 0.0, 1.1)
    tilt_az = az[:, None] + _u(gen, (B, NF), -1.3, 1.3)  # lean the face towards the camera's side
    axis = torch.stack([torch.sin(tilt) * torch.cos(tilt_az), torch.sin(tilt) * torch.sin(tilt_az), torch.cos(tilt)], -1)
    e1, e2 = _frame(axis)
    disc_r = _u(gen, (B, NF), 0.05, 0.15)
    petal_len = disc_r * _u(gen, (B, NF), 1.6, 3.4)
    petal_w = petal_len * _u(gen, (B, NF), 0.28, 0.6)
    cup = _u(gen, (B, NF), -0.1, 0.75)  # petals rise towards the axis by this angle (rad)
    phase = _u(gen, (B, NF), 0, two_pi)

    # colours: petals anywhere but green (blue…purple…red…orange…yellow), sometimes white
    hue = (_u(gen, (B, NF), 0.0, 0.78) + 0.45) % 1.0
    white = _u(gen, (B, NF)) < 0.15
    sat = torch.where(white, _u(gen, (B, NF), 0.0, 0.12), _u(gen, (B, NF), 0.45, 1.0))
    val = _u(gen, (B, NF), 0.7, 1.0)
    petal_rgb = hsv_to_rgb(hue, sat, val)  # (B, NF, 3)
    base_kind = _u(gen, (B, NF))  # petal base: darker (< 0.5), lighter or yellow
    base_rgb = torch.where((base_kind < 0.5)[..., None], petal_rgb * 0.45,
                           torch.where((base_kind < 0.75)[..., None], 0.5 + 0.5 * petal_rgb, hsv_to_rgb(torch.full_like(hue, 0.14), torch.full_like(hue, 0.8), torch.ones_like(hue))))
    disc_rgb = hsv_to_rgb(_u(gen, (B, NF), 0.05, 0.17), _u(gen, (B, NF), 0.55, 1.0), _u(gen, (B, NF), 0.2, 0.95))
    green = hsv_to_rgb(_u(gen, (B, NF), 0.2, 0.38), _u(gen, (B, NF), 0.4, 0.85), _u(gen, (B, NF), 0.25, 0.6))

    # petals (B, NF, NP)
    n_petals = _count(gen, (B, NF), *cfg.petals)
    k = torch.arange(NP, device=dev)
    p_on = (k[None, None] < n_petals[..., None]) & f_on[..., None]
    ang = phase[..., None] + two_pi * k / n_petals[..., None].float() + _u(gen, (B, NF, NP), -0.12, 0.12)
    radial = torch.cos(ang)[..., None] * e1[:, :, None] + torch.sin(ang)[..., None] * e2[:, :, None]
    tangent = -torch.sin(ang)[..., None] * e1[:, :, None] + torch.cos(ang)[..., None] * e2[:, :, None]
    c_cup = (cup[..., None] + _u(gen, (B, NF, NP), -0.12, 0.12))
    along = torch.cos(c_cup)[..., None] * radial + torch.sin(c_cup)[..., None] * axis[:, :, None]
    p_len = petal_len[..., None] * _u(gen, (B, NF, NP), 0.85, 1.1)
    # alternate petals sit a little higher, so overlapping neighbours do not z-fight
    lift = (k % 2).float() * 0.012
    p_center = head[:, :, None] + along * (0.6 * disc_r[..., None] + 0.5 * p_len)[..., None] + axis[:, :, None] * lift[..., None]
    p_normal = torch.cross(along, tangent, dim=-1)
    p_axes = torch.stack([along, tangent, p_normal], -1)  # (B, NF, NP, 3, 3) columns
    p_radii = torch.stack([0.5 * p_len, 0.5 * petal_w[..., None].expand_as(p_len), 0.06 * p_len.clamp_max(0.25) + 0.004], -1)
    p_rgb = (petal_rgb[:, :, None] * _u(gen, (B, NF, NP, 1), 0.88, 1.05)).clamp(0, 1)
    p_rgb2 = base_rgb[:, :, None].expand_as(p_rgb)

    # disc, raised a little above the petals' roots
    d_center = head + axis * (0.25 * disc_r)[..., None]
    d_axes = torch.stack([e1, e2, axis], -1)
    d_radii = torch.stack([disc_r, disc_r, disc_r * _u(gen, (B, NF), 0.35, 0.7)], -1)

    # stem from below the ground (hidden by it, or running out of a blurred picture) to the head
    s_bottom = torch.cat([base_xy, torch.full_like(height[..., None], -0.4)], -1)
    s_vec = head - s_bottom
    s_len = s_vec.norm(dim=-1)
    s_dir = s_vec / s_len[..., None]
    s1, s2 = _frame(s_dir)
    s_axes = torch.stack([s1, s2, s_dir], -1)
    s_r = _u(gen, (B, NF), 0.012, 0.022)
    s_radii = torch.stack([s_r, s_r, 0.5 * s_len], -1)
    s_center = s_bottom + 0.5 * s_vec

    # leaves on the stem, rising outwards
    n_leaves = _count(gen, (B, NF), *cfg.leaves)
    l_on = (torch.arange(NL, device=dev)[None, None] < n_leaves[..., None]) & f_on[..., None]
    at = _u(gen, (B, NF, NL), 0.1, 0.55) * height[..., None]  # height of the leaf's root
    root = s_bottom[:, :, None] + s_dir[:, :, None] * ((at + 0.4) / s_dir[..., 2:3].clamp_min(0.3))[..., None]
    l_az = _u(gen, (B, NF, NL), 0, two_pi)
    l_rise = _u(gen, (B, NF, NL), 0.15, 0.8)
    l_along = torch.stack([torch.cos(l_az) * torch.cos(l_rise), torch.sin(l_az) * torch.cos(l_rise), torch.sin(l_rise)], -1)
    l_side = torch.stack([-torch.sin(l_az), torch.cos(l_az), torch.zeros_like(l_az)], -1)
    l_len = _u(gen, (B, NF, NL), 0.14, 0.32)
    l_center = root + l_along * (0.5 * l_len)[..., None]
    l_axes = torch.stack([l_along, l_side, torch.cross(l_along, l_side, dim=-1)], -1)
    l_radii = torch.stack([0.5 * l_len, l_len * _u(gen, (B, NF, NL), 0.1, 0.2), torch.full_like(l_len, 0.006)], -1)
    l_rgb = (green[:, :, None] * _u(gen, (B, NF, NL, 1), 0.85, 1.1)).clamp(0, 1)

    # pack per flower: petals, disc, stem, leaves → (B, NF * (NP + 2 + NL))
    def pack(p, d, s, l):  # noqa: E741
        return torch.cat([p, d[:, :, None], s[:, :, None], l], 2).flatten(1, 2)

    kinds = pack(torch.full((B, NF, NP), PETAL, device=dev), torch.full((B, NF), DISC, device=dev),
                 torch.full((B, NF), STEM, device=dev), torch.full((B, NF, NL), LEAF, device=dev))
    green_dark = green * 0.6
    # each head's shadow: its centre projected along the sun onto the ground, as wide as the flower
    sun_xy = light[:, None, :2] / light[:, None, 2:3]
    shadows = torch.cat([head[..., :2] - sun_xy * head[..., 2:3], ((0.6 * disc_r + petal_len) * f_on)[..., None]], -1)
    params_bg = _background(gen, B, dist, cfg.blurred_background)
    return SceneParams(
        cam_origin=origin, cam_right=right, cam_up=up, cam_forward=forward, tan_half_fov=tan_half, light=light, ambient=ambient,
        centers=pack(p_center, d_center, s_center, l_center),
        axes=pack(p_axes, d_axes, s_axes, l_axes),
        radii=pack(p_radii, d_radii, s_radii, l_radii),
        colors=pack(p_rgb, disc_rgb, green, l_rgb),
        colors2=pack(p_rgb2, disc_rgb * 0.5, green_dark, green_dark[:, :, None].expand_as(l_rgb)),
        kinds=kinds.long(),
        active=pack(p_on, f_on, f_on, l_on),
        shadows=shadows,
        **params_bg,
    )


def _background(gen: torch.Generator, B: int, dist: torch.Tensor, p_blurred: float) -> dict[str, torch.Tensor]:
    """Ground, sky and backdrop draws (see ``SceneParams``); ``dist`` (B,) camera distances."""
    blurred = _u(gen, (B,)) < p_blurred
    # ground: soil to grass, as smooth noise over a few units, plus fine grass brightness
    g_h = _u(gen, (B, 1, 1, 1), 0.06, 0.3)
    g_tex = hsv_to_rgb((g_h + _u(gen, (B, 1, 8, 8), -0.05, 0.05)).clamp(0, 1), _u(gen, (B, 1, 8, 8), 0.3, 0.7),
                       _u(gen, (B, 1, 8, 8), 0.18, 0.45)).squeeze(1).permute(0, 3, 1, 2)
    grass = _u(gen, (B, 1, 32, 32), 0.7, 1.15)
    # sky: a blue to grey zenith over a pale horizon
    zen = hsv_to_rgb(_u(gen, (B,), 0.53, 0.64), _u(gen, (B,), 0.1, 0.65), _u(gen, (B,), 0.7, 1.0))
    hor = 0.75 * zen + 0.25 * _u(gen, (B, 1), 0.85, 1.0)
    # backdrop: two colours (foliage greens, browns, shadows, pale light) mixed by a coarse field
    c1 = hsv_to_rgb(_u(gen, (B,), 0.12, 0.4), _u(gen, (B,), 0.3, 0.9), _u(gen, (B,), 0.1, 0.55))
    c2 = hsv_to_rgb(_u(gen, (B,), 0.05, 0.45), _u(gen, (B,), 0.1, 0.7), _u(gen, (B,), 0.3, 0.95))
    mix = _u(gen, (B, 1, 5, 5))
    backdrop = c1[:, :, None, None] * mix + c2[:, :, None, None] * (1 - mix)
    return {"blurred": blurred, "far": dist * 4.0, "ground_tex": g_tex, "grass_tex": grass,
            "sky": torch.stack([hor, zen], 1), "backdrop": backdrop}



# --------------------------------------------------------------------------------------------
# rasterising
# --------------------------------------------------------------------------------------------
def _ray_basis(p: SceneParams, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per scene (B, 3) vectors g0, g1, g2 with ray direction d(row, col) = g0 + col·g1 + row·g2
    through pixel centres; d·forward = 1, so a ray parameter t is the z-depth."""
    th = p.tan_half_fov[:, None]
    g1 = p.cam_right * (2 * th / size)
    g2 = -p.cam_up * (2 * th / size)
    g0 = p.cam_forward + p.cam_right * (th * (1 / size - 1)) + p.cam_up * (th * (1 - 1 / size))
    return g0, g1, g2


def rasterize(p: SceneParams, size: int, rgb_blur: float = 0.0, noise: float = 0.0, gen: torch.Generator | None = None) -> Scene:
    """Render ``p`` at ``size``×``size`` px (see the module docstring). ``noise`` > 0 needs ``gen``."""
    dev = p.centers.device
    B, P = p.active.shape
    S = size
    g0, g1, g2 = _ray_basis(p, S)

    # ---- primitives in use, each in its unit-sphere frame: local = A (x − c), A = diag(1/r) Rᵀ
    bi, pi = p.active.nonzero(as_tuple=True)
    R = p.axes[bi, pi]  # (N, 3, 3)
    r = p.radii[bi, pi]
    c = p.centers[bi, pi]
    # geometry in float64 (a few numbers per primitive): the camera is ~200 thin-petal radii away, so
    # in the unit-sphere frame the hit point o' + t·d' is a difference of large numbers
    A = (R.double().transpose(1, 2) / r.double()[:, :, None])
    o_l = (A @ (p.cam_origin[bi].double() - c.double())[:, :, None])[..., 0]
    keep = (o_l * o_l).sum(1) > 1.0  # the camera inside an ellipsoid sees nothing of it
    bi, pi, R, r, c, A, o_l = bi[keep], pi[keep], R[keep], r[keep], c[keep], A[keep], o_l[keep]
    N = len(bi)
    pd64 = torch.stack([(A @ g[bi].double()[:, :, None])[..., 0] for g in (g0, g1, g2)], 1)  # (N, 3 [p0 p1 p2], 3)
    pd, o32 = pd64.to(c.dtype), o_l.to(c.dtype)  # pass 1 in float32: which pixels, and the depth

    # ---- screen-space boxes: the projected corners of each oriented bounding box
    signs = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], device=dev, dtype=c.dtype)
    corners = c[:, None] + (signs[None] * r[:, None]) @ R.transpose(1, 2)  # (N, 8, 3)
    rel = corners - p.cam_origin[bi][:, None]
    z = (rel * p.cam_forward[bi][:, None]).sum(-1)
    th = p.tan_half_fov[bi][:, None]
    xs = (rel * p.cam_right[bi][:, None]).sum(-1) / z.clamp_min(1e-6) / th
    ys = (rel * p.cam_up[bi][:, None]).sum(-1) / z.clamp_min(1e-6) / th
    colf = (xs + 1) * (S / 2) - 0.5  # pixel-centre coordinates
    rowf = (1 - ys) * (S / 2) - 0.5
    behind = (z < NEAR).any(1)  # a corner behind the camera: the projection is unbounded, take the image
    c0 = torch.where(behind, 0, colf.amin(1).ceil().clamp(0, S)).long()
    c1 = torch.where(behind, S - 1, colf.amax(1).floor().clamp(-1, S - 1)).long()
    r0 = torch.where(behind, 0, rowf.amin(1).ceil().clamp(0, S)).long()
    r1 = torch.where(behind, S - 1, rowf.amax(1).floor().clamp(-1, S - 1)).long()
    w = (c1 - c0 + 1).clamp_min(0)
    h = (r1 - r0 + 1).clamp_min(0)
    counts = w * h

    # ---- pass 1: every (primitive, pixel of its box) pair → depth; z-buffer by amin of packed keys
    total = int(counts.sum())
    pair = torch.repeat_interleave(torch.arange(N, device=dev), counts, output_size=total)
    start = torch.cumsum(counts, 0) - counts
    off = torch.arange(total, device=dev) - start[pair]
    wp = w[pair]
    row = r0[pair] + torch.div(off, wp, rounding_mode="floor")
    col = c0[pair] + off % wp
    t = _hit(pd[pair], o32[pair], col.to(c.dtype), row.to(c.dtype))
    prim_idx = pair
    key = torch.where(torch.isfinite(t) & (t > NEAR), (t.float().view(torch.int32).long() << _IDX_BITS) | prim_idx, _NO_HIT)

    bg_depth, ground = _background_depth(p, g0, g1, g2, S)  # (B, S, S)
    zbuf = ((bg_depth.float().view(torch.int32).long() << _IDX_BITS) | _BG).flatten()
    pix = bi[pair] * (S * S) + row * S + col
    zbuf.scatter_reduce_(0, pix, key, reduce="amin")
    zbuf = zbuf.view(B, S, S)
    win = zbuf & _BG
    depth = (zbuf >> _IDX_BITS).int().view(torch.float32).to(c.dtype)
    on_prim = win != _BG

    # ---- pass 2: the winning hit of every covered pixel: normal, texture, light
    flat = on_prim.view(-1).nonzero().squeeze(1)  # covered pixels, index into (B·S·S)
    sel_b = torch.div(flat, S * S, rounding_mode="floor")
    pix = flat - sel_b * (S * S)
    sel_r = torch.div(pix, S, rounding_mode="floor")
    sel_c = pix - sel_r * S
    wi = win.view(-1)[flat]
    # the hit again in float64, as the closest approach minus the half chord: on the unit sphere
    cf, rf = sel_c.double(), sel_r.double()
    d_l = pd64[wi, 0] + cf[:, None] * pd64[wi, 1] + rf[:, None] * pd64[wi, 2]
    a_l = (d_l * d_l).sum(1)
    o_w = o_l[wi]
    qc = o_w - ((o_w * d_l).sum(1) / a_l)[:, None] * d_l
    q = qc - torch.sqrt((1.0 - (qc * qc).sum(1)).clamp_min(0) / a_l)[:, None] * d_l
    cam = torch.stack([p.cam_right, p.cam_up, -p.cam_forward], 1)  # (B, 3, 3) rows: world → camera
    n_world = _unit((A[wi].transpose(1, 2) @ q[:, :, None])[..., 0]).to(c.dtype)
    n_cam = _unit((cam[sel_b] @ n_world[:, :, None])[..., 0])
    q = q.to(c.dtype)
    wb, wp = bi[wi], pi[wi]
    kind = p.kinds[wb, wp]
    albedo = _texture(q, kind, p.colors[wb, wp], p.colors2[wb, wp])
    ndl = (n_world * p.light[sel_b]).sum(1)
    # petals and leaves are thin and let light through: "wrap" lighting, never fully dark
    wrap = torch.where((kind == PETAL) | (kind == LEAF), 0.35, 0.0)
    diffuse = ((ndl + wrap) / (1 + wrap)).clamp_min(0)
    amb = p.ambient[sel_b]
    prim_rgb = albedo * (amb + (1 - amb) * diffuse)[:, None]

    # ---- background, then the primitives painted over it; (B, S, S, 3) buffers, so a covered
    # pixel is one row of a (B·S·S, 3) view, and the result a channels-last (B, 3, S, S)
    rgb = _background_rgb(p, g0, g1, g2, S, bg_depth, ground)
    up_cam = cam[:, :, 2]  # world z in camera coordinates, (B, 3)
    facing = torch.tensor([0.0, 0.0, 1.0], device=dev, dtype=c.dtype)
    normals = torch.where(ground[..., None], up_cam[:, None, None, :], facing)
    rgb.view(-1, 3)[flat] = prim_rgb
    normals.view(-1, 3)[flat] = n_cam
    ids = torch.where(ground, GROUND_ID, SKY_ID).view(-1)
    ids[flat] = wp
    ids = ids.view(B, 1, S, S)
    depth = depth[:, None]
    contours = contours_from_ids(ids, depth)

    rgb = rgb.permute(0, 3, 1, 2)
    if rgb_blur > 0:
        rgb = _blur(rgb, rgb_blur)
    if noise > 0:
        if gen is None:
            raise ValueError("noise needs a generator")
        # one noise plane for the three channels (luminance noise): a third of the draws
        u = torch.rand((B, 1, S, S), generator=gen, device=dev, dtype=rgb.dtype)
        rgb = rgb + (noise * math.sqrt(12.0)) * (u - 0.5)  # uniform noise of standard deviation ``noise``
    return Scene(rgb=rgb.clamp(0, 1).contiguous(), depth=depth, normals=normals.permute(0, 3, 1, 2).contiguous(),
                 contours=contours, ids=ids.long())


def _hit(pd: torch.Tensor, o_l: torch.Tensor, col: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """First hit of rays with the unit sphere. ``pd`` (M, 3, 3) the local direction's affine terms,
    ``o_l`` (M, 3) the local origin, ``col``/``row`` (M,) pixel coordinates → t (M,) (NaN: miss).

    Stable form: with a = |d'|², b = o'·d', the squared distance of the ray's closest point to the
    centre is |o' − (b/a) d'|², and the hit is at t = −b/a − sqrt((1 − that)/a)."""
    d = pd[:, 0] + col[:, None] * pd[:, 1] + row[:, None] * pd[:, 2]
    a = (d * d).sum(1)
    tb = (o_l * d).sum(1) / a
    qc = o_l - tb[:, None] * d
    h = 1.0 - (qc * qc).sum(1)
    return -tb - torch.sqrt(h / a)  # NaN where h < 0: a miss


def _background_depth(p: SceneParams, g0, g1, g2, S: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, S) depth of the ground (z = 0) where it is nearer than ``far``, else ``far``; and the
    mask of ground pixels (never in blurred scenes)."""
    dev = g0.device
    ar = torch.arange(S, device=dev, dtype=g0.dtype)
    dz = g0[:, 2, None, None] + ar[None, None, :] * g1[:, 2, None, None] + ar[None, :, None] * g2[:, 2, None, None]
    t = -p.cam_origin[:, 2, None, None] / dz.clamp_max(-1e-6)
    far = p.far[:, None, None]
    ground = (dz < 0) & (t < far) & ~p.blurred[:, None, None]
    return torch.where(ground, t, far.expand_as(t)), ground


def _background_rgb(p: SceneParams, g0, g1, g2, S: int, depth: torch.Tensor, ground: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) contiguous: textured, sun-lit ground fading into haze under the sky; or the
    blurred backdrop. Each is computed only for the scenes that have it."""
    B = depth.shape[0]
    dev, dt = depth.device, depth.dtype
    out = torch.empty(B, S, S, 3, device=dev, dtype=dt)
    ib = p.blurred.nonzero().squeeze(1)
    ig = (~p.blurred).nonzero().squeeze(1)
    if len(ib):
        # out of focus: the coarse colours upsampled smoothly, blurred at low resolution, then resized
        back = _blur(F.interpolate(p.backdrop[ib], size=(16, 16), mode="bilinear", align_corners=False), 2.0)
        out[ib] = F.interpolate(back, size=(S, S), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    if len(ig):
        ar = torch.arange(S, device=dev, dtype=dt)
        G0, G1, G2 = (g[ig][:, :, None, None] for g in (g0, g1, g2))
        d = G0 + ar[None, None, None, :] * G1 + ar[None, None, :, None] * G2  # (Bg, 3, S, S) world rays
        t = depth[ig]
        o = p.cam_origin[ig]
        hx = o[:, 0, None, None] + t * d[:, 0]
        hy = o[:, 1, None, None] + t * d[:, 1]
        uv = torch.stack([hx, hy], -1)
        tex = F.grid_sample(p.ground_tex[ig], (uv * 0.25).clamp(-1, 1), mode="bilinear", padding_mode="border", align_corners=False)
        fine = torch.remainder(uv * 2.0, 2.0) - 1.0  # grass brightness tiles every 0.5 units
        grass = F.grid_sample(p.grass_tex[ig], fine, mode="bilinear", padding_mode="border", align_corners=False)
        amb = p.ambient[ig]
        sun = (amb + (1 - amb) * p.light[ig, 2].clamp_min(0))[:, None, None, None]
        hor, zen = p.sky[ig, 0][:, :, None, None], p.sky[ig, 1][:, :, None, None]
        haze = (t / p.far[ig, None, None]).clamp(0, 1).pow(1.5)[:, None]
        lit = tex * grass * sun
        if p.shadows is not None:  # soft shadows of the heads: the sun's share of light taken away
            sh = p.shadows[ig]
            d2 = (hx[:, None] - sh[:, :, 0, None, None]) ** 2 + (hy[:, None] - sh[:, :, 1, None, None]) ** 2
            r = sh[:, :, 2, None, None]
            cover = (1.5 - d2.sqrt() / r.clamp_min(1e-6)).clamp(0, 1).amax(1) * (r.amax(1) > 0)  # (Bg, S, S)
            dim = 1 - 0.55 * (1 - amb[:, None, None] / sun[:, 0]) * cover
            lit = lit * dim[:, None]
        ground_rgb = torch.lerp(lit, hor, haze)
        # (a per-plane sum of squares: torch's norm over a channel dim of this layout is ~20× slower)
        elev = (d[:, 2] * torch.rsqrt(d[:, 0] ** 2 + d[:, 1] ** 2 + d[:, 2] ** 2)).mul(2.5).clamp(0, 1)[:, None]
        sky_rgb = torch.lerp(hor, zen, elev)
        out[ig] = torch.where(ground[ig][:, None], ground_rgb, sky_rgb).permute(0, 2, 3, 1)
    return out


def _texture(q: torch.Tensor, kind: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Albedo (M, 3) of hits at local unit-sphere points ``q`` (M, 3) (x along the part's length)."""
    x, y = q[:, 0], q[:, 1]
    # petal: base colour near the root (x = −1) blending into the petal colour, fine veins along it
    base = ((-x - 0.2) / 0.6).clamp(0, 1)[:, None]
    veins = 1.0 - 0.12 * torch.cos(y * 9 * math.pi).abs().pow(6)
    petal = (c1 * (1 - base) + c2 * base) * (0.88 + 0.12 * (x + 1) / 2)[:, None] * veins[:, None]
    # disc: a lattice of seeds
    seeds = 0.82 + 0.18 * torch.sin(x * 14) * torch.sin(y * 14)
    disc = c1 * (seeds * (0.6 + 0.4 * (x * x + y * y)))[:, None]  # darker towards the centre
    # leaf: darker midrib; stem: a faint lengthwise gradient
    rib = (1 - (y.abs() / 0.07).clamp(0, 1))[:, None]
    leaf = c1 * (1 - rib) + c2 * rib
    stem = c1 * (0.9 + 0.1 * q[:, 2:3])
    k = kind[:, None]
    return torch.where(k == PETAL, petal, torch.where(k == DISC, disc, torch.where(k == LEAF, leaf, stem))).clamp(0, 1)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), replicate padding."""
    rad = max(1, int(math.ceil(2 * sigma)))
    k = torch.exp(-torch.arange(-rad, rad + 1, device=x.device, dtype=x.dtype) ** 2 / (2 * sigma**2))
    k = k / k.sum()
    C = x.shape[1]
    x = F.pad(x, (rad, rad, rad, rad), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def contours_from_ids(ids: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) ids and depth → (B, 1, H, W) float contours: 1 at a pixel whose id differs from a
    4-neighbour's and which is the nearer of the two (ties: the larger id), so every id change is
    marked exactly once, one pixel wide, on the occluding side."""
    out = torch.zeros_like(depth, dtype=torch.bool)

    def mark(a_id, b_id, a_z, b_z):  # does pixel a (vs neighbour b) get marked?
        return (a_id != b_id) & ((a_z < b_z) | ((a_z == b_z) & (a_id > b_id)))

    L, Rt = (..., slice(None, -1)), (..., slice(1, None))
    U, D = (..., slice(None, -1), slice(None)), (..., slice(1, None), slice(None))
    out[L] |= mark(ids[L], ids[Rt], depth[L], depth[Rt])
    out[Rt] |= mark(ids[Rt], ids[L], depth[Rt], depth[L])
    out[U] |= mark(ids[U], ids[D], depth[U], depth[D])
    out[D] |= mark(ids[D], ids[U], depth[D], depth[U])
    return out.to(depth.dtype)


def render(cfg: RenderConfig, batch: int, gen: torch.Generator) -> Scene:
    """``batch`` random scenes at ``cfg.image_size`` on ``gen``'s device; see the module docstring."""
    cfg.validate()
    params = sample_scenes(cfg, batch, gen)
    return rasterize(params, cfg.image_size, cfg.rgb_blur, cfg.noise, gen)


# --------------------------------------------------------------------------------------------
# pictures, benchmark, command line
# --------------------------------------------------------------------------------------------
# viridis at 0, 0.25, 0.5, 0.75, 1 (near = bright): depth maps read the same in every report
_VIRIDIS = ((0.267, 0.005, 0.329), (0.229, 0.322, 0.546), (0.128, 0.567, 0.551), (0.369, 0.789, 0.383), (0.993, 0.906, 0.144))


def depth_picture(depth: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) depth → (B, 3, H, W) in [0, 1]: per scene, log depth from the nearest pixel
    (yellow) to the farthest (dark purple), viridis."""
    ld = depth.clamp_min(1e-6).log()
    far = ld.flatten(1).amax(1).view(-1, 1, 1, 1)
    lo = ld.flatten(1).amin(1).view(-1, 1, 1, 1)
    # the range of everything but the sky (when there is something else), sky darkest
    hi = torch.where(ld < far, ld, lo).flatten(1).amax(1).view(-1, 1, 1, 1)
    hi = torch.where(hi > lo, hi, far)
    v = (1 - (ld - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1) * (len(_VIRIDIS) - 1)
    cmap = torch.tensor(_VIRIDIS, device=depth.device, dtype=depth.dtype)
    i0 = v.floor().long().clamp_max(len(_VIRIDIS) - 2)
    f = v - i0
    out = cmap[i0] * (1 - f[..., None]) + cmap[i0 + 1] * f[..., None]  # (B, 1, H, W, 3)
    return out[:, 0].permute(0, 3, 1, 2)


def normals_picture(normals: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) unit normals → colours (n + 1) / 2 (right = red, up = green, facing = blue)."""
    return (normals + 1) / 2


def gallery(scene: Scene, n: int | None = None) -> torch.Tensor:
    """A grid (3, n·S, 4·S): per row one scene's RGB | depth | normals | contours."""
    n = n or scene.rgb.shape[0]
    cols = [scene.rgb[:n], depth_picture(scene.depth[:n]), normals_picture(scene.normals[:n]), scene.contours[:n].expand(-1, 3, -1, -1)]
    rows = torch.cat(cols, dim=3)  # (n, 3, S, 4S)
    return torch.cat(list(rows), dim=1).clamp(0, 1)


def save_jpeg(img: torch.Tensor, path: str | Path, max_bytes: int = 60_000, pad: int = 0) -> int:
    """Write (3, H, W) in [0, 1] as a JPEG of at most ``max_bytes`` (the highest quality that fits,
    from 90 down), or, for a ``.png`` path, as a lossless PNG (returns 0 then). Returns the quality used."""
    import io

    from PIL import Image

    arr = (img.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    pic = Image.fromarray(arr)
    if Path(path).suffix.lower() == ".png":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pic.save(path, format="PNG", optimize=True)
        return 0
    for q in range(90, 19, -5):
        buf = io.BytesIO()
        pic.save(buf, format="JPEG", quality=q, optimize=True, subsampling=0 if q >= 80 else 2)
        if buf.tell() <= max_bytes:
            break
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(buf.getvalue())
    return q


def bench(sizes: Sequence[int] = (96, 128), batch: int = 256, threads: Sequence[int] = (2, 1), device: str = "cpu", repeats: int = 7,
          seed: int = 0) -> dict:
    """Scenes per second of ``render`` (sampling + rasterising + labels), per thread count and image
    size: the median of ``repeats`` timed batches after two warm-up batches, with the conditions of
    the measurement (device, versions, the machine's load average before and after: the CPU may be
    shared). The torch thread setting is restored afterwards."""
    import os

    before = torch.get_num_threads()
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows = []
    try:
        for n in threads:
            torch.set_num_threads(n)
            for s in sizes:
                cfg = RenderConfig(image_size=s)
                for _ in range(2):
                    render(cfg, batch, gen)
                times, cpu = [], []
                for _ in range(repeats):
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t0, c0 = time.perf_counter(), time.process_time()
                    render(cfg, batch, gen)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                times.sort()
                cpu.sort()
                med, cmed = times[len(times) // 2], cpu[len(cpu) // 2]
                rows.append({"threads": n, "image_size": s, "batch": batch, "scenes_per_s": round(batch / med, 1),
                             "best_scenes_per_s": round(batch / times[0], 1), "median_batch_s": round(med, 4),
                             "scenes_per_cpu_s": round(batch / cmed, 1) if cmed > 0 else None, "repeats": repeats})
    finally:
        torch.set_num_threads(before)
    return {
        "what": "ssl_train.render.render: sample scenes + rasterise RGB, depth, normals, contours (default RenderConfig)",
        "command": None,  # filled in by main
        "device": device if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "threads": list(threads),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before] if load_before else None,
        "load_average_after": [round(v, 2) for v in os.getloadavg()] if load_before else None,
        "target": "≥ 500 scenes/s at 96 px on the project's 2-core CPU (#30)",
        "results": rows,
        "config": asdict(RenderConfig()),
    }


def bench_markdown(rep: dict) -> str:
    """The benchmark as a short Markdown page."""
    lines = ["# Render benchmark (#30)", "",
             f"`{rep.get('command') or 'python -m ssl_train.render --bench'}` — {rep['what']}.", "",
             f"Device {rep['device']} ({rep['cpu_count']} CPUs), torch {rep['torch']}, Python {rep['python']}; "
             f"load average (1, 5, 15 min) before {rep['load_average_before']}, after {rep['load_average_after']}: the CPU is shared, "
             "other jobs may have run meanwhile.", "",
             "| threads | image size | batch | scenes/s (median) | best | median batch time | scenes per CPU-second |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rep["results"]:
        lines.append(f"| {r['threads']} | {r['image_size']} px | {r['batch']} | {r['scenes_per_s']:.0f} | {r['best_scenes_per_s']:.0f} "
                     f"| {r['median_batch_s'] * 1000:.0f} ms | {r.get('scenes_per_cpu_s') or 0:.0f} |")
    lines += ["", f"Target: {rep['target']}.", "",
              "Why two thread counts: the renderer is a few hundred tensor ops per batch, each an OpenMP parallel region. "
              "When another process keeps one of the two cores busy, two threads wait at every region's barrier for the "
              "descheduled one (and spin meanwhile, so CPU-seconds grow too): measured here 10× slower than one thread "
              "in that state (3.2 s vs 0.5 s for 256 scenes at 96 px), while on an idle machine two threads are faster. "
              "Render with one thread when the CPU is shared.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "python -m ssl_train.render") -> int:
    """``python -m ssl_train.render --bench`` (writes reports/render-bench.json and .md) and/or
    ``--gallery OUT`` (a JPEG grid: RGB | depth | normals | contours per scene)."""
    ap = argparse.ArgumentParser(prog=prog, description="Procedural flower scenes with depth, normals and contours (#30).")
    ap.add_argument("--bench", action="store_true", help="measure scenes/s and write --bench-out .json and .md")
    ap.add_argument("--bench-out", default="reports/render-bench", help="path without extension (default reports/render-bench)")
    ap.add_argument("--sizes", default="96,128", help="image sizes to benchmark, px")
    ap.add_argument("--batch", type=int, default=256, help="scenes per rendered batch")
    ap.add_argument("--threads", default="2,1", help="torch intra-op thread counts to benchmark, comma-separated")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--gallery", metavar="OUT", help="write a JPEG gallery here (e.g. reports/render-gallery.jpg)")
    ap.add_argument("--scenes", type=int, default=6, help="gallery rows")
    ap.add_argument("--size", type=int, default=128, help="gallery image size, px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-kb", type=int, default=60, help="gallery size limit, KB (JPEG quality is lowered to fit)")
    args = ap.parse_args(argv)
    if not (args.bench or args.gallery):
        ap.error("nothing to do: give --bench and/or --gallery OUT")
    try:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA device here; use --device cpu")
        try:
            threads = tuple(int(v) for v in str(args.threads).split(","))
        except ValueError:
            raise UserError(f"--threads {args.threads!r} must be comma-separated integers, e.g. 2,1") from None
        if args.batch < 1 or min(threads) < 1 or args.repeats < 1 or args.scenes < 1:
            raise UserError("--batch, --threads, --repeats and --scenes must be ≥ 1")
        if args.gallery and Path(args.gallery).suffix.lower() not in (".jpg", ".jpeg", ".png"):
            raise UserError(f"--gallery {args.gallery}: give a .jpg or .png file name, e.g. reports/render-gallery.jpg")
        if args.gallery:
            from .paths import check_output

            check_output(args.gallery, "--gallery")  # an unwritable place fails here, before rendering
        if args.gallery:
            cfg = RenderConfig(image_size=args.size)
            cfg.validate()
            scene = render(cfg, args.scenes, torch.Generator(device=args.device).manual_seed(args.seed))
            q = save_jpeg(gallery(scene), args.gallery, args.max_kb * 1000)
            print(json.dumps({"gallery": args.gallery, "scenes": args.scenes, "size": args.size, "seed": args.seed, "format": "png" if q == 0 else f"jpeg quality {q}",
                              "bytes": Path(args.gallery).stat().st_size}))
        if args.bench:
            try:
                sizes = tuple(int(v) for v in args.sizes.split(","))
            except ValueError:
                raise UserError(f"--sizes {args.sizes!r} must be comma-separated integers, e.g. 96,128") from None
            for s in sizes:
                RenderConfig(image_size=s).validate()
            rep = bench(sizes, args.batch, threads, args.device, args.repeats, args.seed)
            rep["command"] = "python -m ssl_train.render " + " ".join(argv if argv is not None else sys.argv[1:])
            out = Path(args.bench_out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
            out.with_suffix(".md").write_text(bench_markdown(rep))
            print(json.dumps(rep["results"]))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
