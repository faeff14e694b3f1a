"""The affine family: Rotate, TranslateX, TranslateY, and the nearest-neighbour shears that
Fast AutoAugment's policies use (ShearXNearest, ShearYNearest), PIL's affine maps with NEAREST.

PIL samples the source at the output pixel's centre (x + 0.5, y + 0.5) mapped through the
inverse affine, rounds it down (NEAREST), and gives the fill colour outside [0, W) x [0, H).
The batched path is one gather with per-sample source coordinates; each op type's batched
function is its inverse affine, ``(v (n,), H, W) -> (a, b, c, d, e, f) (n, 6)`` float64: the
output pixel centre ``(x, y)`` reads the source at ``(a x + b y + c, d x + e y + f)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from awsaa.augment.kernels.cache import per_value
from awsaa.augment.kernels.common import Segment, pil_fill

# ----------------------------------------------------------------------------- PIL reference


def _affine_pil(img: Image.Image, coeffs: tuple[float, ...], fill: int | Sequence[int]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST,
                         fillcolor=pil_fill(img, fill))


def rotate_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return img.rotate(v, resample=Image.Resampling.NEAREST, fillcolor=pil_fill(img, fill))


def translate_x_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return _affine_pil(img, (1, 0, v * img.size[0], 0, 1, 0), fill)


def translate_y_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return _affine_pil(img, (1, 0, 0, 0, 1, v * img.size[1]), fill)


def shear_x_nearest_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return _affine_pil(img, (1, v, 0, 0, 1, 0), fill)


def shear_y_nearest_pil(img: Image.Image, v: float, fill: int | Sequence[int]) -> Image.Image:
    return _affine_pil(img, (1, 0, 0, v, 1, 0), fill)


# ----------------------------------------------------------------------------- batched: inverse affines


def rotate(v: Tensor, h: int, w: int) -> Tensor:
    """PIL ``Image.rotate(v)``: counter-clockwise about the centre."""
    rad = -torch.deg2rad(v)
    # PIL rounds the matrix to 15 decimals before use.
    cos = torch.round(torch.cos(rad) * 1e15) / 1e15
    sin = torch.round(torch.sin(rad) * 1e15) / 1e15
    cx, cy = w / 2.0, h / 2.0
    return torch.stack([cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy], 1)


def translate_x(v: Tensor, h: int, w: int) -> Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, zero, v * w, zero, one, zero], 1)  # a positive offset moves content left


def translate_y(v: Tensor, h: int, w: int) -> Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, zero, zero, zero, one, v * h], 1)


def shear_x_nearest(v: Tensor, h: int, w: int) -> Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, v, zero, zero, one, zero], 1)


def shear_y_nearest(v: Tensor, h: int, w: int) -> Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, zero, zero, v, one, zero], 1)


# ----------------------------------------------------------------------------- batched: sampling


def _source_index(sx: Tensor, sy: Tensor, h: int, w: int) -> Tensor:
    """(n, H*W) int64: the flat index, into the source with a one-pixel border of the fill
    colour ((H + 2) x (W + 2)), of integer source pixels ``(sy, sx)`` (n, H, W); outside
    pixels are clamped onto the border, so one gather reads them and the fill (masking the
    output afterwards is slower on CPU)."""
    flat = sy.clamp_(-1, h).add_(1).mul_(w + 2).add_(sx.clamp_(-1, w).add_(1))
    return flat.view(-1, h * w).long()


def _gather_nearest(x: Tensor, index: Tensor, fill: int | tuple[int, ...]) -> Tensor:
    """``out[n, :, y, x]`` read from the fill-bordered source at ``index`` (n, H*W) (:func:`_source_index`)."""
    n, c, h, w = x.shape
    if isinstance(fill, int):
        source = F.pad(x, (1, 1, 1, 1), value=fill)
    else:  # one value per channel
        source = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1).repeat(n, 1, h + 2, w + 2)
        source[:, :, 1:-1, 1:-1] = x
    source = source.view(n, c, (h + 2) * (w + 2))
    return source.gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)


def affine_maps(coeffs: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pillow's source pixel of every output pixel, split into a row and a column term per
    coordinate, in 16.16 fixed point: ``sx = (row_x[n, y] + col_x[n, x]) >> 16``, likewise ``sy``.
    ``coeffs`` (n, 6) float64 on the CPU; the terms are int64 (n, H) and (n, W), on the CPU.

    A rotation or shear is Pillow's ``affine_fixed``: pixel (x, y) reads
    ``(a2 + y FIX(b) + x FIX(a)) >> 16`` with ``a2 = FIX(c + a/2 + b/2)``. A pure translation or
    scaling (``b == d == 0``) is ``ImagingScaleAffine``: a float started at ``c + a/2`` and
    accumulated ``+= a`` along the row (and ``f + e/2``, ``+= e`` down the column), floored; its
    row term is 0 and its column term the floor, shifted up by 16 bits. (On the CPU ``cumsum``
    adds in sequence in float64, exactly as that loop does.)"""
    a, b, c, d, e, f = coeffs.unbind(1)

    def fix(v: Tensor) -> Tensor:  # Pillow's FIX(v): FLOOR(v * 65536.0 + 0.5)
        return torch.floor(v * 65536.0 + 0.5).long()

    ys, xs = torch.arange(h).view(1, h), torch.arange(w).view(1, w)
    row_x = fix(c + a * 0.5 + b * 0.5).view(-1, 1) + ys * fix(b).view(-1, 1)
    col_x = xs * fix(a).view(-1, 1)
    row_y = fix(f + d * 0.5 + e * 0.5).view(-1, 1) + ys * fix(e).view(-1, 1)
    col_y = xs * fix(d).view(-1, 1)
    scaling = (b == 0) & (d == 0)
    if bool(scaling.any()):
        s = scaling.view(-1, 1)
        run_x = torch.cat([(c + a * 0.5).view(-1, 1), a.view(-1, 1).expand(-1, w - 1)], 1).cumsum(1)
        run_y = torch.cat([(f + e * 0.5).view(-1, 1), e.view(-1, 1).expand(-1, h - 1)], 1).cumsum(1)
        row_x, col_x = torch.where(s, 0, row_x), torch.where(s, torch.floor(run_x).long() << 16, col_x)
        row_y, col_y = torch.where(s, torch.floor(run_y).long() << 16, row_y), torch.where(s, 0, col_y)
    return row_x, col_x, row_y, col_y


Coefficients = Callable[[Tensor, int, int], Tensor]  # an op type's inverse affine: (v, H, W) -> (n, 6)


def _affine_index(coeffs_of: Coefficients, values: Tensor, h: int, w: int, device: torch.device) -> tuple[Tensor]:
    """(n, H*W) int64 on ``device``: Pillow's source pixel of every output pixel of the op type
    whose inverse affine is ``coeffs_of``, at each of ``values``, as a flat index into the
    fill-bordered source."""
    terms = affine_maps(coeffs_of(values, h, w), h, w)
    # int32 where every sum fits (any image of ordinary size), int64 otherwise
    wide = max(int(t.abs().max()) for t in terms) >= 2**30
    row_x, col_x, row_y, col_y = (t.to(device, torch.int64 if wide else torch.int32) for t in terms)
    n = values.shape[0]
    sx = (row_x.view(n, h, 1) + col_x.view(n, 1, w)).bitwise_right_shift_(16)
    sy = (row_y.view(n, h, 1) + col_y.view(n, 1, w)).bitwise_right_shift_(16)
    return (_source_index(sx, sy, h, w),)


def kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    """PIL ``Image.transform(AFFINE, coeffs, NEAREST)`` per sample (``Image.rotate`` included),
    source pixel for source pixel: Pillow maps a rotation or shear in 16.16 fixed point and a
    pure translation or scaling by a float accumulated along the row and down the column
    (:func:`affine_maps`); each is reproduced, so that a source coordinate near an integer
    lands where Pillow's does. The maps are built once per distinct value (:func:`per_value`)."""
    _, _, h, w = x.shape
    index = torch.cat([per_value(_affine_index, f, values[a:b], h, w, x.device)[0] for f, a, b in segments])
    return [_gather_nearest(x, index, fill)]
