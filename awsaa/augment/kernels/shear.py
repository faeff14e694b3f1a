"""The shear family: ShearX, ShearY with PIL's bicubic resampling, about the top-left corner.

Row ``y`` of ShearX is read from ``x + s (y + 0.5)``: a shift that is the same for the whole
row, so PIL's 2-D bicubic filter (``a = -1``, edge-clamped taps) reduces to four taps along the
row at one fractional position per row. ShearY is ShearX of the transposed image. Each op
type's batched function takes ``(x, shear (n,), fill)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor

from awsaa.augment.kernels.cache import per_value
from awsaa.augment.kernels.common import Segment, centres, pil_fill, to_uint8

# ----------------------------------------------------------------------------- PIL reference


def shear_x_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, (1, v, 0, 0, 1, 0), Image.Resampling.BICUBIC,
                         fillcolor=pil_fill(img, fill))


def shear_y_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, (1, 0, 0, v, 1, 0), Image.Resampling.BICUBIC,
                         fillcolor=pil_fill(img, fill))


# ----------------------------------------------------------------------------- batched


def _shear_taps(key: object, shear: Tensor, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """PIL's bicubic ShearX rows for each shear in ``shear`` (n,): the source columns every
    row's taps read, edge-clamped (n, H, W + 3) int64; the fractional position of each row's
    taps (n, 1, H, 1) float32; and which output pixels' centres map inside the source
    (n, 1, H, W) float32, 1 inside and 0 outside. (``key``: the cache's, unused.)"""
    n = shear.shape[0]
    xs, ys = centres(h, w, torch.device("cpu"))
    offset = shear.to(torch.float64).view(n, 1, 1) * ys  # (n, h, 1)
    whole = torch.floor(offset)
    frac = (offset - whole).float().view(n, 1, h, 1)
    src = xs + offset  # continuous source x of the pixel centre
    inside = ((src >= 0) & (src < w)).float().unsqueeze(1)
    cols = torch.arange(-1, w + 2).view(1, 1, w + 3)
    columns = (cols + whole.long()).clamp_(0, w - 1)
    return columns.to(device), frac.to(device), inside.to(device)


def shear_x(x: Tensor, shear: Tensor, fill: int | tuple[int, ...]) -> Tensor:
    """PIL ``transform(AFFINE, (1, s, 0, 0, 1, 0), BICUBIC)`` (ShearX about the top-left
    corner), from the taps of :func:`_shear_taps`, built once per distinct shear."""
    n, c, h, w = x.shape
    columns, d, inside = per_value(_shear_taps, "ShearX", shear, h, w, x.device)
    # One gather of the w + 3 source columns that a row's taps read; the four taps are then
    # slices of that window. PIL's cubic convolution (a = -1) in its own form, p1 + d (p2 +
    # d (p3 + d p4)) on differences of the taps: a flat area stays exactly flat (a weighted
    # sum of the taps came out one lower on 38% of a flat 255 image). PIL computes in float64,
    # this in float32 (6x faster): elsewhere a pixel may come out one lower or higher.
    window = x.float().gather(3, columns.unsqueeze(1).expand(n, c, h, w + 3))
    v1, v2, v3, v4 = (window[..., k:w + k] for k in range(4))
    e, f = v1 - v2, v3 - v4  # p2, p3, p4 are sums of integers: exact in any order
    p3 = torch.add(f, e, alpha=2)
    p4 = e.add_(f).neg_()
    out = (v3 - v1).addcmul_(p3.addcmul_(p4, d), d)
    out = torch.addcmul(v2, out, d)
    colour = float(fill) if isinstance(fill, int) else torch.tensor(fill, dtype=out.dtype, device=out.device)
    colour = colour if isinstance(colour, float) else colour.view(1, c, 1, 1)
    return to_uint8(out.mul_(inside).add_((1 - inside) * colour))  # (masked_fill_ is slower)


def shear_y(x: Tensor, shear: Tensor, fill: int | tuple[int, ...]) -> Tensor:
    return shear_x(x.transpose(2, 3), shear, fill).transpose(2, 3)  # ShearX of the transposed image


def kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    return [f(x[a:b], values[a:b], fill) for f, a, b in segments]
