"""How a model folder stores its weights, and back: float32 tensors ⇄ the tensors of weights.safetensors.

Storage (``export --weights``): ``float32`` as trained; ``float16`` every floating tensor halved
(except one whose values would overflow float16); ``int8`` every convolution / linear weight (≥ 2
dims, at least ``INT8_MIN_NUMEL`` values) symmetric per output channel, ``<key>.qscale`` holding the
float32 scales, the rest float16. ``as_float32`` turns stored tensors back into the float32 state
dict they stand for — the same values the ONNX graph computes with (Cast / DequantizeLinear), so the
parity check, fine-tuning and the app all see one set of weights.
"""
from __future__ import annotations

__all__ = ["QSCALE", "INT8_MIN_NUMEL", "quantize_int8", "storage_tensors", "as_float32", "sub_state", "storage_dtypes"]

QSCALE = ".qscale"  # suffix of the per-output-channel float32 scale of an int8-stored tensor
INT8_MIN_NUMEL = 256  # smaller tensors (biases, batch-norm) stay float16: int8 would save nothing


def quantize_int8(w):
    """Symmetric per-output-channel int8: float (C, ...) → (int8 (C, ...), float32 scale (C,)) with
    w ≈ q * scale[c]; |q| ≤ 127. A channel of zeros gets scale 1."""
    import torch

    w = w.detach().float()
    amax = w.reshape(w.shape[0], -1).abs().amax(1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.round(w / scale.view(-1, *[1] * (w.dim() - 1))).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def storage_tensors(encoder, head, fp16: bool, int8: bool = False) -> dict:
    """encoder.* / head.* tensors as stored: floating tensors in float16 when ``fp16`` (except any
    whose values would overflow float16); with ``int8`` every floating weight of ≥ 2 dims and at
    least ``INT8_MIN_NUMEL`` values (convolutions, linear layers) becomes int8 plus a float32
    ``<key>.qscale`` (per output channel); everything else unchanged."""
    import torch

    out = {}
    for prefix, mod in (("encoder.", encoder), ("head.", head)):
        if mod is None:
            continue
        for k, v in mod.state_dict().items():
            v = v.detach().cpu().contiguous()
            if int8 and v.is_floating_point() and v.dim() >= 2 and v.numel() >= INT8_MIN_NUMEL and torch.isfinite(v).all():
                out[prefix + k], out[prefix + k + QSCALE] = quantize_int8(v)
                continue
            if fp16 and v.is_floating_point():
                h = v.to(torch.float16)
                if torch.isfinite(h).all() or not torch.isfinite(v).all():
                    v = h
            out[prefix + k] = v
    return out


def as_float32(state: dict) -> dict:
    """Stored tensors → the float32 state dict they stand for: float16 widened, int8 tensors
    multiplied by their ``.qscale`` (the same float32 product DequantizeLinear computes)."""
    import torch

    out = {}
    for k, v in state.items():
        if k.endswith(QSCALE) and k[: -len(QSCALE)] in state:
            continue
        if v.dtype == torch.int8 and k + QSCALE in state:
            scale = state[k + QSCALE].to(torch.float32)
            out[k] = v.to(torch.float32) * scale.view(-1, *[1] * (v.dim() - 1))
        else:
            out[k] = v.to(torch.float32) if v.is_floating_point() else v
    return out


def sub_state(state: dict, prefix: str) -> dict:
    """The tensors of ``state`` under ``prefix`` ("encoder.", "head."), keys without it."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def storage_dtypes(stored: dict) -> list[str]:
    """Sorted dtype names ("float16", "int8", ...) of the stored weights, scales not counted."""
    return sorted({str(v.dtype).removeprefix("torch.") for k, v in stored.items()
                   if (v.is_floating_point() or k + QSCALE in stored) and not k.endswith(QSCALE)})
