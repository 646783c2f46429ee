"""Encoder registry. Every pretext task and every downstream method builds its encoder here, so
comparisons between tasks are between identical networks.

An encoder maps images ``(B, 3, H, W)`` float (normalised) to a feature map ``(B, C, h, w)``;
``forward_stages`` also returns the map after each stage so probes can read any depth.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder and its size. ``widths`` are the channels of the four stages."""

    name: str = "resnet_compact"
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 1, 2, 1)

    def __post_init__(self) -> None:
        if self.name not in ENCODERS:
            raise ValueError(f"unknown encoder {self.name!r}; registered: {', '.join(sorted(ENCODERS))}")
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError("encoder widths and blocks must be non-empty and of equal length")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "EncoderConfig":
        return EncoderConfig(name=d["name"], widths=tuple(d["widths"]), blocks=tuple(d["blocks"]))


class BasicBlock(nn.Module):
    """The ResNet basic block (two 3×3 convs and a shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.short(x))


class CompactResNet(nn.Module):
    """A ResNet sized for 96-px photos: a stride-2 3×3 stem and a max-pool, then stages at strides
    4, 8, 16, 32 of the input; 96 px in → 3×3 out. About 1.5 M parameters at the default widths, so
    ten of them fit the 30 MB model budget in fp16. The max-pool makes a training step ~4× cheaper
    on a CPU (measured: 681 vs 167 img/s on 2 cores, batch 128, channels_last).
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        w0 = cfg.widths[0]
        self.stem = nn.Sequential(nn.Conv2d(3, w0, 3, 2, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        stages = []
        cin = w0
        for i, (w, n) in enumerate(zip(cfg.widths, cfg.blocks)):
            blocks = [BasicBlock(cin, w, 1 if i == 0 else 2)] + [BasicBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.stage_dims: tuple[int, ...] = tuple(cfg.widths)
        self.feature_dim: int = cfg.widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: each block starts as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` (B, 3, H, W) → one feature map per stage, (B, C_i, H/2^(i+2), W/2^(i+2))."""
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 3, H, W) → last feature map (B, feature_dim, H/32, W/32)."""
        return self.forward_stages(x)[-1]


def _resnet_compact(cfg: EncoderConfig) -> nn.Module:
    return CompactResNet(cfg)


ENCODERS: dict[str, Callable[[EncoderConfig], nn.Module]] = {"resnet_compact": _resnet_compact}


def build_encoder(cfg: EncoderConfig | None = None) -> nn.Module:
    """Build the encoder named in ``cfg`` (default: the compact ResNet)."""
    cfg = cfg or EncoderConfig()
    return ENCODERS[cfg.name](cfg)


def pooled(fmap: torch.Tensor) -> torch.Tensor:
    """Global average pool: (B, C, h, w) → (B, C). The feature vector every probe reads."""
    return fmap.mean(dim=(2, 3))


def encoder_info(encoder: nn.Module, image_size: int):
    """What a task's ``build_head`` needs to know of ``encoder`` (``tasks.base.EncoderInfo``) at
    photos of ``image_size`` px."""
    from .tasks.base import EncoderInfo

    return EncoderInfo(
        feature_dim=encoder.feature_dim,
        stage_dims=tuple(encoder.stage_dims),
        image_size=image_size,
        stride=32,
    )
