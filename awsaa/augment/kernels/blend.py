"""The blend family: Brightness, Color, Contrast, Sharpness, PIL's ``ImageEnhance``.

PIL blends the image with a "degenerate" image: ``out = degenerate + factor * (image -
degenerate)``, in float32, truncated and clipped. The PIL kernels take the enhance factor;
the batched kernel takes ``factor - 1`` (the signed magnitude of the AWS ops, whose factor is
``1 ± magnitude``). Each op type's batched function builds the degenerate of a slice's float32
pixels, in whatever shape broadcasts against it (None for Brightness's 0, one value per
sample for Contrast's), and returns it with the part of the slice that the blend changes
(Sharpness keeps the border); or None where the degenerate is the image itself and the blend
the identity. Nothing is materialized that the blend does not need.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageEnhance
from torch import Tensor

from awsaa.augment.kernels.common import Segment, to_uint8

# ----------------------------------------------------------------------------- PIL reference


def brightness_pil(img: Image.Image, factor: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def color_pil(img: Image.Image, factor: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageEnhance.Color(img).enhance(factor)


def contrast_pil(img: Image.Image, factor: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(factor)


def sharpness_pil(img: Image.Image, factor: float, fill: int | Sequence[int]) -> Image.Image:
    return ImageEnhance.Sharpness(img).enhance(factor)


# ----------------------------------------------------------------------------- batched

Degenerate = tuple[Tensor | None, Tensor] | None


def _grayscale(y: Tensor) -> Tensor:
    """PIL ``convert("L")`` of float32 pixels: ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``,
    (n, 1, H, W) float32. Every intermediate is an integer below 2**24, so float32 holds it
    exactly and the result is PIL's integer arithmetic."""
    if y.shape[1] == 1:
        return y  # the pixels themselves: a caller that changes them in place must not blend with this
    g = y[:, 0:1] * 19595
    g.add_(y[:, 1:2], alpha=38470).add_(y[:, 2:3], alpha=7471).add_(0x8000)
    return g.div_(65536).floor_()


def brightness(y: Tensor) -> Degenerate:
    return None, y  # black: the blend is factor * image


def color(y: Tensor) -> Degenerate:
    if y.shape[1] == 1:  # an L image's degenerate is itself, as in PIL
        return None
    return _grayscale(y), y


def contrast(y: Tensor) -> Degenerate:
    gray = _grayscale(y)
    mean = gray.sum(dim=(1, 2, 3), keepdim=True, dtype=torch.float64) / gray[0].numel()  # exact sums
    return torch.floor(mean + 0.5).float(), y


def sharpness(y: Tensor) -> Degenerate:
    """PIL's SMOOTH filter, [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, rounded, border pixels kept.

    That is ``round((3x3 box sum + 4 * centre) / 13)`` in exact integers (13 is odd: no ties).
    The border's degenerate is the image itself, which the blend leaves as it is: only the
    interior is blended."""
    if y.shape[2] < 3 or y.shape[3] < 3:
        return None  # all border
    rows = y[:, :, :, :-2] + y[:, :, :, 1:-1]  # separable 3x3 box sum
    rows += y[:, :, :, 2:]
    box = rows[:, :, :-2] + rows[:, :, 1:-1]
    box += rows[:, :, 2:]
    interior = y[:, :, 1:-1, 1:-1]
    return box.add_(interior, alpha=4).div_(13).add_(0.5).floor_(), interior


def kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    # The factor 1 + sign * m is formed in float64 and rounded to float32 once, as PIL's is;
    # forming it in float32 gives results that differ by one in places.
    factor = (1.0 + values).float().to(x.device).view(-1, 1, 1, 1)
    out = x.float()
    for degenerate_of, a, b in segments:  # in place, segment by segment: the same float32 steps as PIL's
        blend = degenerate_of(out[a:b])  # built before the slice changes
        if blend is None:
            continue
        degenerate, y = blend
        if degenerate is None:
            y.mul_(factor[a:b])
        else:
            y.sub_(degenerate).mul_(factor[a:b]).add_(degenerate)
    return [to_uint8(out)]
