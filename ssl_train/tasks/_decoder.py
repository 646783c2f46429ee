"""A light convolutional decoder shared by the dense pretext tasks colorization and inpainting.
Not a task: ``load_all`` skips modules whose name starts with ``_``.

It reads only the encoder's *last* feature map (stride 32), never earlier stages: skip connections
would let the shallow layers solve these problems from local cues and leave the deep features, the
ones every probe reads, untrained. (Super-resolution is the exception, see ``superres``: its target
is local detail, which the last map cannot place.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def n_upsamplings(from_stride: int, to_stride: int) -> int:
    """How many ×2 upsamplings take a map of stride ``from_stride`` to (at least) ``to_stride``."""
    return max(0, math.ceil(math.log2(from_stride / max(1, to_stride))))


class UpDecoder(nn.Module):
    """Feature map (B, C, h, w) → (B, out_ch, H, W).

    One 3×3 conv, then ``n_up`` × [bilinear ×2, 3×3 conv, BN, ReLU] with the width halving from
    ``width`` down to ``min_width``, then a 1×1 conv to ``out_ch``. The result is resized
    (bilinear) to ``out_size`` when given and different, so any input size works (e.g. a 100-px
    image gives a 4×4 map, whose ×32 is 128, not 100).
    """

    def __init__(self, in_ch: int, out_ch: int, n_up: int, width: int = 128, min_width: int = 16,
                 out_size: int | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c = width
        for _ in range(n_up):
            c2 = max(min_width, c // 2)
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(c, c2, 3, 1, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(inplace=True)]
            c = c2
        layers.append(nn.Conv2d(c, out_ch, 1))
        self.net = nn.Sequential(*layers)
        self.out_size = out_size
        self.out_channels = c

    def forward(self, fmap: torch.Tensor, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        y = self.net(fmap)
        size = out_size or ((self.out_size, self.out_size) if self.out_size else None)
        if size is not None and tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y
