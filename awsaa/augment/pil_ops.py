"""PIL reference implementation: one op on one image, with the official release's semantics.

This is the ground truth the batched tensor path (:mod:`awsaa.augment.tensor_ops`) is
tested against; each type's PIL kernel sits with its batched one, in its family's module of
:mod:`awsaa.augment.kernels`. It follows the AWS release op for op: Shear with bicubic resampling,
Translate and Rotate with nearest, enhance factors ``1 ± magnitude``. One difference,
on purpose: every geometric op fills with ``fill`` (the release used gray 128 for
Shear/Translate and black for Rotate; a gray border is wrong on black-background
datasets, so the fill is a dataset setting).
"""

from __future__ import annotations

import random as _random
from collections.abc import Sequence

from PIL import Image, ImageOps

from awsaa.augment.kernels.common import pil_fill
from awsaa.augment.space import ALL_OPS, OpSpec
from awsaa.augment.table import OP_TYPES


def apply_op(
    img: Image.Image,
    op: OpSpec | str,
    sign: int | None = None,
    fill: int | Sequence[int] = 128,
    rng: _random.Random | None = None,
) -> Image.Image:
    """Apply one op to one PIL image (mode ``L`` or ``RGB``), by its type's PIL kernel (the op
    table's, :mod:`awsaa.augment.table`).

    ``sign`` (+1 or -1) chooses the direction of signed ops; ``None`` draws it from
    ``rng`` (or the ``random`` module), as the official release does.
    """
    if isinstance(op, str):
        op = ALL_OPS[op]
    if op.signed and sign is None:
        sign = (rng or _random).choice((-1, 1))
    row = OP_TYPES[op.type]
    m = op.magnitude if op.magnitude is not None else 0.0  # None: an op without a magnitude
    v = m * sign if op.signed and sign is not None else m  # unsigned ops never read the sign
    return row.pil(img, 1 + v if row.factor else v, fill)


def apply_pair(
    img: Image.Image,
    ops: tuple[OpSpec | str, OpSpec | str],
    signs: tuple[int | None, int | None] = (None, None),
    fill: int | Sequence[int] = 128,
    rng: _random.Random | None = None,
) -> Image.Image:
    """Apply a sub-policy: both ops, in order (AWS sub-policies have no per-op probability)."""
    for op, sign in zip(ops, signs, strict=True):
        img = apply_op(img, op, sign, fill, rng)
    return img


def random_crop(img: Image.Image, padding: int = 4, offset: tuple[int, int] | None = None,
                fill: int = 0, rng: _random.Random | None = None) -> Image.Image:
    """Pad by ``padding`` on every side with ``fill``, then crop the original size at
    ``offset = (top, left)`` in ``[0, 2 * padding]`` (drawn when ``None``)."""
    if offset is None:
        r = rng or _random
        offset = (r.randint(0, 2 * padding), r.randint(0, 2 * padding))
    w, h = img.size
    padded = ImageOps.expand(img, border=padding, fill=pil_fill(img, fill))
    top, left = offset
    return padded.crop((left, top, left + w, top + h))


def hflip(img: Image.Image) -> Image.Image:
    return ImageOps.mirror(img)


def cutout(img: Image.Image, length: int = 16, center: tuple[int, int] | None = None,
           fill: int | Sequence[int] = 0, rng: _random.Random | None = None) -> Image.Image:
    """Cutout (DeVries & Taylor): one ``length`` x ``length`` square centred at
    ``center = (y, x)`` (uniform over the image when ``None``), clipped at the border."""
    w, h = img.size
    if center is None:
        r = rng or _random
        center = (r.randrange(h), r.randrange(w))
    y, x = center
    y1, y2 = max(y - length // 2, 0), min(y + length // 2, h)
    x1, x2 = max(x - length // 2, 0), min(x + length // 2, w)
    out = img.copy()
    if y2 > y1 and x2 > x1:
        out.paste(pil_fill(img, fill), (x1, y1, x2, y2))
    return out
