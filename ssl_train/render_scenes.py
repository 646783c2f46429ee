"""What a flower scene is and how ``render`` draws a random one (#30): ``RenderConfig`` (the
ranges scenes are drawn from), ``SceneParams`` (everything ``render.rasterize`` needs: camera, sun,
ellipsoid primitives, ground, sky and backdrop) and ``sample_scenes`` (every number from the
caller's ``torch.Generator``, in an order fixed by the config and batch size alone). The
rasteriser, the labels and the pictures are in ``render.py``, whose docstring describes the scenes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .errors import UserError

__all__ = ["RenderConfig", "SceneParams", "sample_scenes", "PETAL", "DISC", "STEM", "LEAF", "MIN_SIZE", "MAX_SIZE"]

PETAL, DISC, STEM, LEAF = 0, 1, 2, 3  # primitive kinds
MIN_SIZE, MAX_SIZE = 16, 1024  # image side in px


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


# Long on purpose (~130 lines): the draws must keep their order (same generator state → same scenes, bit for bit),
# and reading them top to bottom — camera, flowers, colours, petals, disc, stem, leaves — is the scene's description.
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
