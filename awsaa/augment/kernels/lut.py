"""The lut family: AutoContrast, Equalize, Invert, Posterize, Solarize, per-channel lookup tables.

Invert, Posterize and Solarize are the same table for a whole sample and are applied
directly, as uint8 arithmetic (what their tables amount to); AutoContrast and Equalize depend
on the image: one table per channel, then one gather. Each batched kernel takes ``(x, v)``:
a batch and its per-sample parameter (the bits, the threshold; ignored by the others).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageOps
from torch import Tensor

from awsaa.augment.kernels.common import Segment, ramp

# ----------------------------------------------------------------------------- PIL reference


def invert_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageOps.invert(img)


def posterize_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageOps.posterize(img, int(v))


def solarize_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageOps.solarize(img, math.ceil(v))  # pixel < v  <=>  pixel < ceil(v) for integer pixels


def autocontrast_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageOps.autocontrast(img)


def equalize_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageOps.equalize(img)


# ----------------------------------------------------------------------------- batched


def invert(x: Tensor, v: Tensor) -> Tensor:
    return x.bitwise_not()  # 255 - x


def posterize(x: Tensor, v: Tensor) -> Tensor:
    """Keep the ``v`` high bits (PIL ``ImageOps.posterize``)."""
    bits = v.round().long().clamp(0, 8)
    return x & ((0xFF << (8 - bits)) & 0xFF).to(x.device, torch.uint8).view(-1, 1, 1, 1)


def solarize(x: Tensor, v: Tensor) -> Tensor:
    """PIL ``ImageOps.solarize``: a value below the threshold stays, every other one is inverted
    (XOR 255). For an integer pixel, ``x < v`` is ``x < ceil(v)``; compared in int16 so that a
    threshold of 256 keeps everything. (A full-size threshold: comparing against a broadcast
    one, or ``torch.where`` on uint8, is several times slower on CPU.)"""
    threshold = torch.ceil(v).clamp(-1, 256).to(x.device, torch.int16).view(-1, 1, 1, 1).expand(x.shape)
    return x ^ (x.to(torch.int16) >= threshold.contiguous()).to(torch.uint8).neg_()


@functools.lru_cache(maxsize=64)
def _autocontrast_scale(device: torch.device) -> Tensor:
    """``255.0 / d`` for d in 0..255 (0 for d = 0), each a correctly rounded Python division."""
    return torch.tensor([255.0 / d if d else 0.0 for d in range(256)], dtype=torch.float64, device=device)


def _apply_lut(lut: Tensor, pixels: Tensor, shape: torch.Size) -> Tensor:
    """Per-channel tables ``lut`` (n*C, 256) applied to ``pixels`` (n*C, H*W) int64."""
    return lut.to(torch.uint8).gather(1, pixels).view(shape)


def autocontrast(x: Tensor, v: Tensor) -> Tensor:
    """PIL ``ImageOps.autocontrast`` (cutoff 0): per channel, stretch [lo, hi] to [0, 255]."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w)
    lo = flat.amin(dim=1, keepdim=True).double()
    hi = flat.amax(dim=1, keepdim=True).double()
    values = ramp(x.device).double()
    # PIL's scale is 255.0 / (hi - lo), a correctly rounded division; torch's vectorized
    # division may multiply by a reciprocal instead, which is off by one ulp for some ranges
    # (and then the table by one for 54 of the 255 ranges): look the exact quotient up.
    scale = _autocontrast_scale(x.device)[(hi - lo).long().clamp(min=1)]
    lut = (values * scale - lo * scale).trunc().clamp_(0, 255)
    return _apply_lut(torch.where(hi > lo, lut, values), flat.long(), x.shape)


def equalize(x: Tensor, v: Tensor) -> Tensor:
    """PIL ``ImageOps.equalize``, per channel, in exact integer arithmetic."""
    n, c, h, w = x.shape
    pixels = x.reshape(n * c, h * w).long()
    # one histogram per channel: a scatter-add into (n*C, 256) (several times faster on the
    # CPU than a bincount over offset values)
    ones = torch.ones(1, 1, dtype=torch.int32, device=x.device).expand(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.int32, device=x.device).scatter_add_(1, pixels, ones).long()
    last_bin = 255 - (hist > 0).flip(1).int().argmax(dim=1, keepdim=True)
    step = (hist.sum(dim=1, keepdim=True) - hist.gather(1, last_bin)) // 255
    below = hist.cumsum(dim=1) - hist  # pixels strictly below each value
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp_(max=255)
    return _apply_lut(torch.where(step > 0, lut, ramp(x.device)), pixels, x.shape)


def kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    return [f(x[a:b], values[a:b]) for f, a, b in segments]
