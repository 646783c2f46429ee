"""Super-resolution: degradation, residual restoration, both input modes, validation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl_train.encoders import EncoderConfig, build_encoder
from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.base import EncoderInfo
from ssl_train.tasks.superres import degrade, psnr, restore


def _smooth(b=2, s=32):
    g = torch.Generator().manual_seed(0)
    return F.interpolate(torch.rand(b, 3, 8, 8, generator=g), size=s, mode="bilinear", align_corners=False)


def test_superres__degrade_shapes_and_smooth_images_survive():
    x = _smooth()
    small, up = degrade(x, 2)
    assert small.shape == (2, 3, 16, 16) and up.shape == x.shape
    assert 0 <= up.min() and up.max() <= 1
    assert psnr(up, x) > 30  # smooth photo: bicubic is nearly lossless
    noisy = torch.rand(2, 3, 32, 32)
    assert psnr(degrade(noisy, 2)[1], noisy) < 20  # fine detail is what is lost
    assert torch.equal(restore(up, x - up), x.clamp(0, 1))


def test_superres__head_starts_as_bicubic_and_modes_give_right_inputs():
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1))).eval()
    for mode, side in (("upsampled", 32), ("small", 16)):
        task = get_task("superres", {"input_mode": mode, "crop_scale_min": "1"})
        head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 32, 32)).eval()
        x = torch.rand(2, 3, 32, 32)
        inputs, target = task.make_batch(x, torch.Generator().manual_seed(0), torch.arange(2))
        assert inputs["x"].shape == (2, 3, side, side) and torch.equal(target, x)
        out = task.forward(enc, head, inputs)
        assert out.shape == (2, 3, 32, 32)
        assert (out - inputs["upsampled"]).abs().max() < 0.05  # near-zero initial residual


def test_superres__impossible_factor_fails_early():
    with pytest.raises(UserError, match="factor"):
        get_task("superres", {"factor": "1"}).config.validate(96)
    with pytest.raises(UserError, match="factor"):
        get_task("superres", {"factor": "8"}).config.validate(32)
    with pytest.raises(UserError, match="input_mode"):
        get_task("superres", {"input_mode": "tiny"}).config.validate(96)
