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

The scenes and how they are drawn: ``render_scenes.py``. Command: ``python -m ssl_train.render --bench``
writes reports/render-bench.json and .md (scenes/s at 96 and 128 px); ``--gallery
reports/render-gallery.jpg`` a grid of RGB | depth | normals | contours (``render_cli.py``).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .render_scenes import DISC, LEAF, PETAL, RenderConfig, SceneParams, sample_scenes

__all__ = ["Scene", "rasterize", "render", "contours_from_ids", "depth_picture", "normals_picture", "GROUND_ID", "SKY_ID"]

GROUND_ID, SKY_ID = -1, -2  # ids of the background (sky and blurred backdrop share SKY_ID)
NEAR = 0.05  # nearest hit, scene units
_IDX_BITS = 24  # low bits of a z-buffer key: the primitive (2^24 - 1 = background)
_BG = (1 << _IDX_BITS) - 1
_NO_HIT = torch.iinfo(torch.int64).max


@dataclass
class Scene:
    """Rendered scenes; see the module docstring for units."""

    rgb: torch.Tensor  # (B, 3, S, S)
    depth: torch.Tensor  # (B, 1, S, S)
    normals: torch.Tensor  # (B, 3, S, S)
    contours: torch.Tensor  # (B, 1, S, S)
    ids: torch.Tensor  # (B, 1, S, S) int64


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


# Long on purpose (~115 lines): the passes of the module docstring's "How" in order (frames, screen boxes, z-buffer,
# shading of the winners, background, labels), each a few lines that read the previous one's tensors.
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


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


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
# pictures (the app's synthetic panel shows depth and normals with these)
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


if __name__ == "__main__":  # python -m ssl_train.render: the command line is render_cli.py's
    from .render_cli import main

    sys.exit(main())
