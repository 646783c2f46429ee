"""The procedural flower renderer (#30): reproducible from the generator, labels that agree with
each other (normals with the depth's own slopes, contours with the ids), impossible settings refused
in one line, and the command's outputs."""
from __future__ import annotations

import json
import math

import pytest
import torch

from ssl_train.errors import UserError
from ssl_train.render import GROUND_ID, SKY_ID, contours_from_ids, rasterize, render
from ssl_train.render_cli import main
from ssl_train.render_scenes import RenderConfig, SceneParams

SMALL = RenderConfig(image_size=48)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread is as fast and leaves a core to the others."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scene(seed: int, cfg: RenderConfig = SMALL, batch: int = 4):
    return render(cfg, batch, torch.Generator().manual_seed(seed))


def test_same_generator_state_gives_the_same_scenes_bit_for_bit():
    a, b = _scene(5), _scene(5)
    for k in ("rgb", "depth", "normals", "contours", "ids"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k


def test_different_seeds_give_different_scenes():
    a, b = _scene(1), _scene(2)
    assert not torch.equal(a.rgb, b.rgb) and not torch.equal(a.depth, b.depth)


def test_shapes_types_and_ranges():
    s = _scene(3, RenderConfig(image_size=40, flowers=(2, 3)), batch=3)
    assert s.rgb.shape == (3, 3, 40, 40) and s.normals.shape == (3, 3, 40, 40)
    assert s.depth.shape == s.contours.shape == s.ids.shape == (3, 1, 40, 40)
    assert s.ids.dtype == torch.int64 and s.rgb.dtype == s.depth.dtype == torch.float32
    assert 0 <= s.rgb.min() and s.rgb.max() <= 1
    assert torch.isfinite(s.depth).all() and (s.depth > 0).all()
    assert torch.allclose(s.normals.norm(dim=1), torch.ones(1), atol=1e-5)
    assert set(s.contours.unique().tolist()) <= {0.0, 1.0}
    assert (s.ids >= 0).any() and (s.ids >= SKY_ID).all()  # some flower is in view
    # visible surfaces face the camera, give or take the perspective at silhouettes (fov ≤ 50°)
    assert (s.normals[:, 2] > -0.7).all()


def _one_ellipsoid(radii: tuple[float, float, float], angle: float, size_blur: float = 0.0) -> SceneParams:
    """One rotated ellipsoid at the origin, seen from 4 units away along +y, over a backdrop."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]) @ torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    one = lambda *v: torch.tensor([v])  # noqa: E731
    return SceneParams(
        cam_origin=one(0.0, -4.0, 0.0), cam_right=one(1.0, 0.0, 0.0), cam_up=one(0.0, 0.0, 1.0), cam_forward=one(0.0, 1.0, 0.0),
        tan_half_fov=torch.tensor([0.4]), light=one(0.0, -0.6, 0.8), ambient=torch.tensor([0.3]),
        centers=torch.zeros(1, 1, 3), axes=rot.view(1, 1, 3, 3), radii=torch.tensor([[radii]]),
        colors=torch.full((1, 1, 3), 0.8), colors2=torch.full((1, 1, 3), 0.4), kinds=torch.ones(1, 1, dtype=torch.long),
        active=torch.ones(1, 1, dtype=torch.bool), blurred=torch.tensor([True]), far=torch.tensor([20.0]),
        ground_tex=torch.rand(1, 3, 4, 4), grass_tex=torch.rand(1, 1, 4, 4), sky=torch.rand(1, 2, 3), backdrop=torch.rand(1, 3, 4, 4),
    )


@pytest.mark.parametrize("radii,angle", [((1.0, 1.0, 1.0), 0.0), ((1.1, 0.5, 0.8), 0.7)])
def test_analytic_normals_agree_with_the_rendered_depths_slopes(radii, angle):
    S = 96
    sc = rasterize(_one_ellipsoid(radii, angle), S)
    t = sc.depth[0, 0].double()
    th = 0.4
    xs = ((torch.arange(S, dtype=torch.float64) + 0.5) * 2 / S - 1) * th
    # camera-space points (right, up, forward) of every pixel: the ray (x, y, 1) times its z-depth
    P = torch.stack([t * xs.view(1, S), t * -xs.view(S, 1), t])
    d_col = P[:, 1:-1, 2:] - P[:, 1:-1, :-2]
    d_row = P[:, 2:, 1:-1] - P[:, :-2, 1:-1]
    n = torch.linalg.cross(d_col, d_row, dim=0)
    n = torch.stack([n[0], n[1], -n[2]])  # → x right, y up, z towards the camera
    n = n / n.norm(dim=0, keepdim=True)
    n = torch.where(n[2:3] < 0, -n, n)
    ref = sc.normals[0, :, 1:-1, 1:-1].double()
    # every pixel of the ellipsoid faces its ray (x, y, -1) in camera coordinates
    ray = torch.stack([xs.view(1, S).expand(S, S), -xs.view(S, 1).expand(S, S), -torch.ones(S, S, dtype=torch.float64)])
    assert ((sc.normals[0].double() * ray).sum(0)[sc.ids[0, 0] == 0] < 1e-6).all()
    # interior pixels: the ellipsoid on all of a 5×5 window (no silhouette in the differences)
    inside = (sc.ids[0, 0] == 0).double()
    inside = torch.nn.functional.avg_pool2d(inside[None, None], 5, 1, 2)[0, 0][1:-1, 1:-1] > 0.999
    assert inside.sum() > 500
    angle_deg = torch.rad2deg(torch.acos((n * ref).sum(0).clamp(-1, 1)))[inside]
    assert angle_deg.median() < 0.5 and torch.quantile(angle_deg, 0.99) < 3.0, (angle_deg.median(), angle_deg.max())


def test_contours_lie_exactly_where_ids_change():
    s = _scene(11, RenderConfig(image_size=64, flowers=(3, 4)), batch=3)
    ids, z, c = s.ids[:, 0], s.depth[:, 0], s.contours[:, 0].bool()
    assert torch.equal(s.contours, contours_from_ids(s.ids, s.depth))
    changes = torch.zeros_like(c)
    # every pair of 4-neighbours with different ids: exactly one of the two is marked… (the nearer)
    for a, b in (((..., slice(None), slice(None, -1)), (..., slice(None), slice(1, None))),
                 ((..., slice(None, -1), slice(None)), (..., slice(1, None), slice(None)))):
        diff = ids[a] != ids[b]
        changes[a] |= diff
        changes[b] |= diff
        a_marked = c[a] | c[b]
        assert a_marked[diff].all()
        nearer_a = (z[a] < z[b]) | ((z[a] == z[b]) & (ids[a] > ids[b]))
        assert c[a][diff & nearer_a].all() and c[b][diff & ~nearer_a].all()
    # …and nothing else is: a contour pixel always has a neighbour of another id
    assert not (c & ~changes).any()
    assert c.any()


def test_background_ids_and_depths():
    s = _scene(4, RenderConfig(image_size=32, blurred_background=0.0, elevation_deg=(5.0, 10.0)), batch=2)
    ground, sky = s.ids == GROUND_ID, s.ids == SKY_ID
    assert ground.any() and sky.any()  # side views see the horizon
    for b in range(2):  # sky at the scene's far depth, the ground nearer
        far = s.depth[b][sky[b]]
        assert (far == far[0]).all() and (s.depth[b][ground[b]] < far[0]).all()
    s = _scene(4, RenderConfig(image_size=32, blurred_background=1.0), batch=2)
    assert not (s.ids == GROUND_ID).any()


@pytest.mark.parametrize("bad,name", [
    (dict(flowers=(0, 3)), "flowers"), (dict(image_size=8), "image_size"), (dict(petals=(5, -1)), "petals"),
    (dict(leaves=(-1, 2)), "leaves"), (dict(elevation_deg=(10.0, 100.0)), "elevation_deg"), (dict(flowers=(4, 2)), "flowers"),
    (dict(blurred_background=1.5), "blurred_background"), (dict(noise=-0.1), "noise"),
])
def test_impossible_settings_fail_in_one_line_naming_the_setting(bad, name):
    with pytest.raises(UserError) as e:
        render(RenderConfig(**bad), 1, torch.Generator().manual_seed(0))
    msg = str(e.value)
    assert "\n" not in msg and name in msg and "must be" in msg


def test_command_writes_gallery_and_benchmark(tmp_path, capsys):
    out = tmp_path / "g.jpg"
    assert main(["--gallery", str(out), "--scenes", "2", "--size", "32"]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (4 * 32, 2 * 32)
    assert out.stat().st_size <= 60_000
    assert main(["--bench", "--sizes", "32", "--batch", "4", "--repeats", "1", "--bench-out", str(tmp_path / "b")]) == 0
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["results"][0]["image_size"] == 32 and rep["results"][0]["scenes_per_s"] > 0 and rep["threads"] == [2, 1] and {r["threads"] for r in rep["results"]} == {1, 2}
    assert "scenes/s" in (tmp_path / "b.md").read_text()
    assert main(["--bench", "--sizes", "8", "--bench-out", str(tmp_path / "c")]) == 2
    assert "image_size=8" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_renders_the_same_kind_of_scene():
    s = render(SMALL, 4, torch.Generator(device="cuda").manual_seed(0))
    assert s.rgb.is_cuda and torch.isfinite(s.depth).all() and torch.equal(s.contours, contours_from_ids(s.ids, s.depth))


def test_cli__ssl_train_render_writes_a_png_gallery_and_refuses_other_names(tmp_path, capsys):
    from ssl_train.__main__ import main as cli

    out = tmp_path / "g.png"
    assert cli(["render", "--gallery", str(out), "--scenes", "2", "--size", "16"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli(["render", "--gallery", str(tmp_path / "g.gif")]) == 2
    assert cli(["render", "--out", str(tmp_path / "o.png"), "--scenes", "1", "--size", "16"]) == 0  # --out: the same option
    assert (tmp_path / "o.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "give a .jpg or .png file name" in capsys.readouterr().err
    assert not (tmp_path / "g.gif").exists()
