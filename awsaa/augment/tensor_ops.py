"""Batched tensor implementation of the 36 ops, for uint8 NCHW batches on any device.

Every function takes a ``uint8`` batch of shape ``(N, C, H, W)`` with ``C`` 1 or 3 and
returns a new one; per-sample parameters (signs, magnitudes, crop offsets, ...) are
tensors of length ``N``. The semantics are those of the PIL reference
(:mod:`awsaa.augment.pil_ops`): the colour ops reproduce PIL's integer and float
arithmetic, the geometric ops PIL's affine sampling (pixel centres, nearest or
edge-clamped bicubic taps with ``a = -1``, fill outside the source image).
``tests/test_ops_parity.py`` holds the two paths together.

The 14 op types fall into four kernels, and :func:`apply_pairs` runs each kernel once per
pair position on all the samples that need it, whatever op and magnitude they drew:

* ``lut``: AutoContrast, Equalize, Invert, Posterize, Solarize are per-channel lookup
  tables: Invert, Posterize and Solarize as the uint8 arithmetic their tables amount to,
  AutoContrast and Equalize as one table per sample and a gather;
* ``blend``: Brightness, Color, Contrast, Sharpness are PIL blends of the image with a
  degenerate image: build the degenerates, then a single blend;
* ``affine``: Rotate, TranslateX, TranslateY (and the nearest-neighbour shears that Fast
  AutoAugment's policies use) are nearest-neighbour affine maps: a single gather with
  per-sample source coordinates;
* ``shear``: ShearX, ShearY (bicubic), one call per axis.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from awsaa.augment.space import OpSpec, SearchSpace, channel_fill

KERNEL_OF_TYPE = {
    **dict.fromkeys(("AutoContrast", "Equalize", "Invert", "Posterize", "Solarize"), "lut"),
    **dict.fromkeys(("Brightness", "Color", "Contrast", "Sharpness"), "blend"),
    **dict.fromkeys(("Rotate", "TranslateX", "TranslateY"), "affine"),
    # Not in the AWS space: nearest-neighbour shears, as Fast AutoAugment's ops use them.
    **dict.fromkeys(("ShearXNearest", "ShearYNearest"), "affine"),
    **dict.fromkeys(("ShearX", "ShearY"), "shear"),
}

# A run of samples that share an op type: (type, start, stop) within a batch slice.
Segment = tuple[str, int, int]
# The colour geometric ops give the area they uncover: one value for every channel, or one
# value per channel. Kernels receive it from :func:`~awsaa.augment.space.channel_fill` as an
# int or a tuple of ints.
Fill = float | Sequence[float]


def _check(images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"expected a uint8 batch of shape (N, 1|3, H, W), got {tuple(images.shape)} {images.dtype}"
        )


def _rows(x: Tensor, index: Tensor) -> Tensor:
    """``x.index_select(0, index)`` through a 2-D view: on CPU several times faster for a
    batch of images than on the 4-D tensor."""
    return x.reshape(x.shape[0], -1).index_select(0, index).view(index.shape[0], *x.shape[1:])


def _to_uint8(x: Tensor) -> Tensor:
    """Clip to [0, 255] and truncate toward zero, as PIL's C casts do. (Through int32: on
    CPU a direct float -> uint8 cast is about twice as slow.)"""
    return x.clamp_(0, 255).to(torch.int32).to(torch.uint8)


@functools.lru_cache(maxsize=64)
def _ramp(device: torch.device) -> Tensor:
    return torch.arange(256, device=device, dtype=torch.int64)


@functools.lru_cache(maxsize=64)
def _centres(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``x + 0.5`` (1, 1, W) and ``y + 0.5`` (1, H, 1), float64."""
    xs = torch.arange(w, device=device, dtype=torch.float64).view(1, 1, w) + 0.5
    ys = torch.arange(h, device=device, dtype=torch.float64).view(1, h, 1) + 0.5
    return xs, ys


# Most calls draw their parameters from a few discrete values (the 36-op space has six per
# geometric type: three magnitudes, two signs), so the geometric kernels build their source
# maps once per distinct value, and cache them for a set of a few: the per-pixel coordinate
# arithmetic then costs nothing, and each sample only looks its value's map up. Many
# distinct values (continuous magnitudes) are built each call, by the same arithmetic.
_CACHED_VALUES = 32  # a segment with at most this many distinct values uses the cache

# kind -> builder(op type, distinct values (u,) float64, H, W, device) -> tables, each (u, ...)
_BUILDERS: dict[str, Callable[[str, Tensor, int, int, torch.device], tuple[Tensor, ...]]] = {}


@functools.lru_cache(maxsize=256)
def _cached_tables(kind: str, t: str, values: tuple[float, ...], h: int, w: int,
                   device: torch.device) -> tuple[Tensor, ...]:
    return _BUILDERS[kind](t, torch.tensor(values, dtype=torch.float64), h, w, device)


def _per_value(kind: str, t: str, values: Tensor, h: int, w: int, device: torch.device) -> tuple[Tensor, ...]:
    """The tables of builder ``kind`` for op type ``t``, one row per sample of ``values``,
    built once per distinct value."""
    uniq, inverse = torch.unique(values, return_inverse=True)
    if uniq.numel() <= _CACHED_VALUES:
        tables = _cached_tables(kind, t, tuple(uniq.tolist()), h, w, device)
    else:
        tables = _BUILDERS[kind](t, uniq, h, w, device)
    inverse = inverse.to(device)
    return tuple(table.index_select(0, inverse) for table in tables)


# ----------------------------------------------------------------------------- lut kernel
# Per-channel lookup tables. Invert, Posterize and Solarize are the same table for a whole
# sample and are applied directly, as uint8 arithmetic (what their tables amount to);
# AutoContrast and Equalize depend on the image: one table per channel, then one gather.


def _invert(x: Tensor, v: Tensor) -> Tensor:
    return x.bitwise_not()  # 255 - x


def _posterize(x: Tensor, v: Tensor) -> Tensor:
    """Keep the ``v`` high bits (PIL ``ImageOps.posterize``)."""
    bits = v.round().long().clamp(0, 8)
    return x & ((0xFF << (8 - bits)) & 0xFF).to(x.device, torch.uint8).view(-1, 1, 1, 1)


def _solarize(x: Tensor, v: Tensor) -> Tensor:
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


def _autocontrast(x: Tensor, v: Tensor) -> Tensor:
    """PIL ``ImageOps.autocontrast`` (cutoff 0): per channel, stretch [lo, hi] to [0, 255]."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w)
    lo = flat.amin(dim=1, keepdim=True).double()
    hi = flat.amax(dim=1, keepdim=True).double()
    ramp = _ramp(x.device).double()
    # PIL's scale is 255.0 / (hi - lo), a correctly rounded division; torch's vectorized
    # division may multiply by a reciprocal instead, which is off by one ulp for some ranges
    # (and then the table by one for 54 of the 255 ranges): look the exact quotient up.
    scale = _autocontrast_scale(x.device)[(hi - lo).long().clamp(min=1)]
    lut = (ramp * scale - lo * scale).trunc().clamp_(0, 255)
    return _apply_lut(torch.where(hi > lo, lut, ramp), flat.long(), x.shape)


def _equalize(x: Tensor, v: Tensor) -> Tensor:
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
    return _apply_lut(torch.where(step > 0, lut, _ramp(x.device)), pixels, x.shape)


_LUT = {"AutoContrast": _autocontrast, "Equalize": _equalize, "Invert": _invert, "Posterize": _posterize,
        "Solarize": _solarize}


def _lut_kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    return [_LUT[t](x[a:b], values[a:b]) for t, a, b in segments]


# ----------------------------------------------------------------------------- blend kernel
# PIL's ImageEnhance blends the image with a "degenerate" image:
# out = degenerate + factor * (image - degenerate), in float32, truncated and clipped.
# Each builder takes a slice's float32 pixels and returns its degenerate, in whatever shape
# broadcasts against it (None for Brightness's 0, one value per sample for Contrast's), and
# the part of the slice that the blend changes (Sharpness keeps the border); or None where
# the degenerate is the image itself and the blend the identity. Nothing is materialized
# that the blend does not need.


def _grayscale(y: Tensor) -> Tensor:
    """PIL ``convert("L")`` of float32 pixels: ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``,
    (n, 1, H, W) float32. Every intermediate is an integer below 2**24, so float32 holds it
    exactly and the result is PIL's integer arithmetic."""
    if y.shape[1] == 1:
        return y  # the pixels themselves: a caller that changes them in place must not blend with this
    g = y[:, 0:1] * 19595
    g.add_(y[:, 1:2], alpha=38470).add_(y[:, 2:3], alpha=7471).add_(0x8000)
    return g.div_(65536).floor_()


Degenerate = tuple[Tensor | None, Tensor] | None


def _degenerate_brightness(y: Tensor) -> Degenerate:
    return None, y  # black: the blend is factor * image


def _degenerate_color(y: Tensor) -> Degenerate:
    if y.shape[1] == 1:  # an L image's degenerate is itself, as in PIL
        return None
    return _grayscale(y), y


def _degenerate_contrast(y: Tensor) -> Degenerate:
    gray = _grayscale(y)
    mean = gray.sum(dim=(1, 2, 3), keepdim=True, dtype=torch.float64) / gray[0].numel()  # exact sums
    return torch.floor(mean + 0.5).float(), y


def _degenerate_sharpness(y: Tensor) -> Degenerate:
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


_DEGENERATE = {"Brightness": _degenerate_brightness, "Color": _degenerate_color,
               "Contrast": _degenerate_contrast, "Sharpness": _degenerate_sharpness}


def _blend_kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    # The factor 1 + sign * m is formed in float64 and rounded to float32 once, as PIL's is;
    # forming it in float32 gives results that differ by one in places.
    factor = (1.0 + values).float().to(x.device).view(-1, 1, 1, 1)
    out = x.float()
    for t, a, b in segments:  # in place, segment by segment: the same float32 steps as PIL's
        blend = _DEGENERATE[t](out[a:b])  # built before the slice changes
        if blend is None:
            continue
        degenerate, y = blend
        if degenerate is None:
            y.mul_(factor[a:b])
        else:
            y.sub_(degenerate).mul_(factor[a:b]).add_(degenerate)
    return [_to_uint8(out)]


# ----------------------------------------------------------------------------- affine kernel
# PIL samples the source at the output pixel's centre (x + 0.5, y + 0.5) mapped through the
# inverse affine, rounds it down (NEAREST), and gives the fill colour outside [0, W) x [0, H).


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


def _affine_coeffs(t: str, v: Tensor, h: int, w: int) -> Tensor:
    """(n, 6) float64: PIL's inverse affine ``(a, b, c, d, e, f)``: the output pixel centre
    ``(x, y)`` reads the source at ``(a x + b y + c, d x + e y + f)``."""
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    if t == "Rotate":  # PIL Image.rotate(v): counter-clockwise about the centre
        rad = -torch.deg2rad(v)
        # PIL rounds the matrix to 15 decimals before use.
        cos = torch.round(torch.cos(rad) * 1e15) / 1e15
        sin = torch.round(torch.sin(rad) * 1e15) / 1e15
        cx, cy = w / 2.0, h / 2.0
        return torch.stack([cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy], 1)
    if t == "TranslateX":  # a positive offset moves content left
        return torch.stack([one, zero, v * w, zero, one, zero], 1)
    if t == "TranslateY":
        return torch.stack([one, zero, zero, zero, one, v * h], 1)
    if t == "ShearXNearest":
        return torch.stack([one, v, zero, zero, one, zero], 1)
    if t == "ShearYNearest":
        return torch.stack([one, zero, zero, v, one, zero], 1)
    raise ValueError(f"no affine map for op type {t!r}")


def _affine_maps(coeffs: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
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


def _affine_index(t: str, values: Tensor, h: int, w: int, device: torch.device) -> Tensor:
    """(n, H*W) int64 on ``device``: Pillow's source pixel of every output pixel of op type
    ``t`` at each of ``values``, as a flat index into the fill-bordered source."""
    terms = _affine_maps(_affine_coeffs(t, values, h, w), h, w)
    # int32 where every sum fits (any image of ordinary size), int64 otherwise
    wide = max(int(t.abs().max()) for t in terms) >= 2**30
    row_x, col_x, row_y, col_y = (t.to(device, torch.int64 if wide else torch.int32) for t in terms)
    n = values.shape[0]
    sx = (row_x.view(n, h, 1) + col_x.view(n, 1, w)).bitwise_right_shift_(16)
    sy = (row_y.view(n, h, 1) + col_y.view(n, 1, w)).bitwise_right_shift_(16)
    return _source_index(sx, sy, h, w)


_BUILDERS["affine"] = lambda t, values, h, w, device: (_affine_index(t, values, h, w, device),)


def _affine_kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    """PIL ``Image.transform(AFFINE, coeffs, NEAREST)`` per sample (``Image.rotate`` included),
    source pixel for source pixel: Pillow maps a rotation or shear in 16.16 fixed point and a
    pure translation or scaling by a float accumulated along the row and down the column
    (:func:`_affine_maps`); each is reproduced, so that a source coordinate near an integer
    lands where Pillow's does. The maps are built once per distinct value (:func:`_per_value`)."""
    _, _, h, w = x.shape
    index = torch.cat([_per_value("affine", t, values[a:b], h, w, x.device)[0] for t, a, b in segments])
    return [_gather_nearest(x, index, fill)]


# ----------------------------------------------------------------------------- shear kernel


def _shear_taps(shear: Tensor, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """PIL's bicubic ShearX rows for each shear in ``shear`` (n,): the source columns every
    row's taps read, edge-clamped (n, H, W + 3) int64; the fractional position of each row's
    taps (n, 1, H, 1) float32; and which output pixels' centres map inside the source
    (n, 1, H, W) float32, 1 inside and 0 outside.

    Row ``y`` is read from ``x + s (y + 0.5)``: a shift that is the same for the whole row,
    so PIL's 2-D bicubic filter (``a = -1``, edge-clamped taps) reduces to four taps along
    the row at one fractional position per row."""
    n = shear.shape[0]
    xs, ys = _centres(h, w, torch.device("cpu"))
    offset = shear.to(torch.float64).view(n, 1, 1) * ys  # (n, h, 1)
    whole = torch.floor(offset)
    frac = (offset - whole).float().view(n, 1, h, 1)
    src = xs + offset  # continuous source x of the pixel centre
    inside = ((src >= 0) & (src < w)).float().unsqueeze(1)
    cols = torch.arange(-1, w + 2).view(1, 1, w + 3)
    columns = (cols + whole.long()).clamp_(0, w - 1)
    return columns.to(device), frac.to(device), inside.to(device)


_BUILDERS["shear"] = lambda t, values, h, w, device: _shear_taps(values, h, w, device)


def _shear_rows(x: Tensor, shear: Tensor, fill: int | tuple[int, ...]) -> Tensor:
    """PIL ``transform(AFFINE, (1, s, 0, 0, 1, 0), BICUBIC)`` (ShearX about the top-left
    corner), from the taps of :func:`_shear_taps`, built once per distinct shear."""
    n, c, h, w = x.shape
    columns, d, inside = _per_value("shear", "ShearX", shear, h, w, x.device)
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
    return _to_uint8(out.mul_(inside).add_((1 - inside) * colour))  # (masked_fill_ is slower)


def _shear_kernel(x: Tensor, segments: list[Segment], values: Tensor, fill: int | tuple[int, ...]) -> list[Tensor]:
    parts = []
    for t, a, b in segments:
        if t == "ShearX":
            parts.append(_shear_rows(x[a:b], values[a:b], fill))
        else:  # ShearY is ShearX of the transposed image
            parts.append(_shear_rows(x[a:b].transpose(2, 3), values[a:b], fill).transpose(2, 3))
    return parts


# Each kernel returns its samples' results as parts in segment order (one tensor, or one per
# segment), concatenated once by the caller.
_KERNELS = {"lut": _lut_kernel, "blend": _blend_kernel, "affine": _affine_kernel, "shear": _shear_kernel}


# ----------------------------------------------------------------------------- dispatch


def apply_type(images: Tensor, op_type: str, values: Tensor, fill: Fill = 128) -> Tensor:
    """Apply op type ``op_type`` with a per-sample parameter ``values`` (N,): the signed
    magnitude (enhance offset, shear, translate fraction, degrees), the bits (Posterize),
    the threshold (Solarize); ignored by AutoContrast, Equalize and Invert."""
    _check(images)
    n = images.shape[0]
    if op_type not in KERNEL_OF_TYPE:
        raise ValueError(f"unknown op type {op_type!r}")
    if n == 0:
        return images.clone()
    values = values.to("cpu", torch.float64).reshape(n)
    fill = channel_fill(fill, images.shape[1])
    return torch.cat(_KERNELS[KERNEL_OF_TYPE[op_type]](images, [(op_type, 0, n)], values, fill))


@functools.lru_cache(maxsize=32)
def _tables(ops: tuple[OpSpec, ...]) -> tuple[Tensor, Tensor, tuple[str, ...], Tensor]:
    """Per op: magnitude, whether it is signed; the op types, and each op's type index."""
    types = tuple(sorted({op.type for op in ops}))
    return (torch.tensor([op.magnitude or 0.0 for op in ops], dtype=torch.float64),
            torch.tensor([op.signed for op in ops]),
            types,
            torch.tensor([types.index(op.type) for op in ops]))


def _values(ops: tuple[OpSpec, ...], index: Tensor, signs: Tensor) -> Tensor:
    """Per-sample parameter of ``ops[index]``: magnitude times sign for the signed ops."""
    mags, signed, _, _ = _tables(ops)
    return mags[index] * torch.where(signed[index], signs.to(torch.float64), 1.0)


def apply_op(images: Tensor, op: OpSpec, signs: Tensor | None = None, fill: Fill = 128) -> Tensor:
    """Apply ``op`` to every image in the batch; ``signs`` (N,) of ±1 for the signed ops."""
    n = images.shape[0]
    signs = torch.ones(n) if signs is None else signs.reshape(n).cpu()
    return apply_type(images, op.type, _values((op,), torch.zeros(n, dtype=torch.long), signs), fill)


def draw_signs(n: int, k: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """(n, k) int8 tensor of independent random ±1 signs, drawn on the CPU."""
    return torch.randint(0, 2, (n, k), generator=generator, dtype=torch.int8) * 2 - 1


def apply_pairs(
    images: Tensor,
    pairs: Tensor,
    space: SearchSpace | Sequence[OpSpec],
    signs: Tensor | None = None,
    fill: Fill = 128,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply sub-policy ``pairs[i] = (op1, op2)`` (indices into ``space``) to image ``i``.

    ``signs`` (N, 2) holds the direction of each signed op; drawn with ``generator``
    when ``None``. ``fill``: one value, or one per channel. Each position sorts the batch
    by kernel and runs each kernel once on its share: four kernel calls at most, whatever the batch size.
    """
    _check(images)
    ops = tuple(space.ops) if isinstance(space, SearchSpace) else tuple(space)
    n = images.shape[0]
    if pairs.shape != (n, 2):
        raise ValueError(f"pairs must have shape ({n}, 2), got {tuple(pairs.shape)}")
    if signs is None:
        signs = draw_signs(n, 2, generator)
    pairs = pairs.detach().to("cpu", torch.long)
    signs = signs.to("cpu")
    if n == 0:
        return images.clone()
    if pairs.min() < 0 or pairs.max() >= len(ops):
        raise ValueError(f"op indices must lie in [0, {len(ops)})")
    fill = channel_fill(fill, images.shape[1])
    _, _, types, type_of_op = _tables(ops)
    everyone = torch.arange(n)
    # Each position sorts the batch by kernel; the second position's sort is taken straight
    # from the first one's sorted result (one gather instead of an unsort and a sort).
    first = _Plan(type_of_op[pairs[:, 0]], types, everyone)
    out = first.run(_rows(images, first.index.to(images.device)),
                    _values(ops, pairs[:, 0], signs[:, 0]), fill)
    second = _Plan(type_of_op[pairs[:, 1]], types, everyone)
    out = second.run(_rows(out, first.inverse()[second.index].to(images.device)),
                     _values(ops, pairs[:, 1], signs[:, 1]), fill)
    return _rows(out, second.inverse().to(images.device))


@functools.lru_cache(maxsize=32)
def _kernel_order(types: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """The types in kernel order (``rank``), and each type's place in it (``position``)."""
    rank = torch.tensor(sorted(range(len(types)), key=lambda t: (KERNEL_OF_TYPE[types[t]], types[t])))
    position = torch.empty_like(rank)
    position[rank] = torch.arange(len(types))
    return rank, position


class _Plan:
    """Samples ``index`` sorted by kernel and op type: ``index`` in sorted order and the
    contiguous segments of each kernel."""

    def __init__(self, type_ids: Tensor, types: Sequence[str], index: Tensor) -> None:
        rank, position = _kernel_order(tuple(types))
        keys = position[type_ids.to("cpu", torch.long)[index]]
        self.order = torch.argsort(keys, stable=True)
        self.index = index[self.order]
        self.by_kernel: dict[str, list[Segment]] = {}
        start = 0
        for p, cnt in enumerate(torch.bincount(keys, minlength=len(types)).tolist()):
            if cnt:
                t = types[int(rank[p])]
                self.by_kernel.setdefault(KERNEL_OF_TYPE[t], []).append((t, start, start + cnt))
                start += cnt

    def inverse(self) -> Tensor:
        """Each original sample's place in the sorted order (when every sample is planned)."""
        inverse = torch.empty_like(self.order)
        inverse[self.order] = torch.arange(len(self.order))
        return inverse

    def run(self, selected: Tensor, values: Tensor, fill: int | tuple[int, ...]) -> Tensor:
        """Each kernel once on its share of ``selected`` (the planned samples, in sorted
        order), ``values`` per sample in the original order; the results in sorted order."""
        vals = values.to("cpu", torch.float64)[self.index]
        parts: list[Tensor] = []
        for kernel, segs in self.by_kernel.items():
            a, b = segs[0][1], segs[-1][2]
            local = [(t, s - a, e - a) for t, s, e in segs]
            parts += _KERNELS[kernel](selected[a:b], local, vals[a:b], fill)
        return torch.cat(parts)


def apply_per_sample(images: Tensor, type_ids: Tensor, types: Sequence[str], values: Tensor, fill: Fill = 128,
                     active: Tensor | None = None) -> Tensor:
    """Apply op type ``types[type_ids[i]]`` with parameter ``values[i]`` to image ``i`` (only
    where ``active[i]`` when given; the others pass through unchanged).

    The active samples are sorted by kernel and type, each kernel runs once on its
    contiguous share, and the results go back in place."""
    n = images.shape[0]
    index = torch.arange(n) if active is None else active.to("cpu").nonzero().squeeze(1)
    if index.numel() == 0:
        return images
    plan = _Plan(type_ids, types, index)
    dev_index = plan.index.to(images.device)
    result = plan.run(_rows(images, dev_index), values, channel_fill(fill, images.shape[1]))
    if active is None:  # every sample changed: undo the sort with one gather (index_copy_ is slower on CPU)
        return _rows(result, plan.inverse().to(images.device))
    return images.index_copy(0, dev_index, result)


# ----------------------------------------------------------------------------- crop / flip / cutout


def random_crop(images: Tensor, padding: int = 4, offsets: Tensor | None = None, fill: int = 0,
                generator: torch.Generator | None = None) -> Tensor:
    """Pad by ``padding`` with ``fill`` and crop back at per-sample ``offsets`` (N, 2) = (top, left)."""
    _check(images)
    n, c, h, w = images.shape
    if offsets is None:
        offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    offsets = offsets.to(images.device, torch.long)
    padded = F.pad(images, (padding,) * 4, value=fill)
    rows = (offsets[:, 0:1] + torch.arange(h, device=images.device)).view(n, 1, h, 1)
    cols = (offsets[:, 1:2] + torch.arange(w, device=images.device)).view(n, 1, 1, w)
    flat = (rows * (w + 2 * padding) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, flat).view(n, c, h, w)


def hflip(images: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Mirror the samples where ``mask`` (N,) is true (each with probability 1/2 when ``None``)."""
    _check(images)
    if mask is None:
        mask = torch.rand(images.shape[0], generator=generator) < 0.5
    mask = mask.to(images.device).view(-1, 1, 1, 1)
    return torch.where(mask, images.flip(3), images)


def cutout_mask(n: int, h: int, w: int, length: int, centers: Tensor) -> Tensor:
    """(n, H, W) bool: the holes of Cutout, ``length // 2`` pixels either side of each
    centre ``centers`` (n, 2) = (y, x) (on ``centers``' device), clipped at the border."""
    half = length // 2
    centers = centers.long()
    ys = torch.arange(h, device=centers.device).view(1, h, 1)
    xs = torch.arange(w, device=centers.device).view(1, 1, w)
    cy, cx = centers[:, 0].view(n, 1, 1), centers[:, 1].view(n, 1, 1)
    return (ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half)


def cutout(images: Tensor, length: int = 16, centers: Tensor | None = None, fill: int | Sequence[int] = 0,
           generator: torch.Generator | None = None) -> Tensor:
    """One ``length`` square per sample, centred at ``centers`` (N, 2) = (y, x), clipped at the border.

    ``fill`` is one value or one per channel (e.g. the dataset mean, which is what the
    official release's zero in normalized space amounts to).
    """
    _check(images)
    n, c, h, w = images.shape
    if centers is None:
        centers = torch.stack([torch.randint(0, h, (n,), generator=generator),
                               torch.randint(0, w, (n,), generator=generator)], dim=1)
    hole = cutout_mask(n, h, w, length, centers.to(images.device))
    fill_t = torch.as_tensor(fill, dtype=torch.uint8, device=images.device).reshape(-1)
    fill_t = fill_t.view(1, -1, 1, 1).expand(n, c, h, w) if fill_t.numel() > 1 else fill_t.view(1, 1, 1, 1)
    return torch.where(hole.unsqueeze(1), fill_t, images)


