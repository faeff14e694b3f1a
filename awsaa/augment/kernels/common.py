"""What the kernels share: the fill colour as both backends take it; for the batched kernels
the batch check, row gathers, PIL's uint8 cast, and a few cached ramps."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch import Tensor

# A run of samples that share an op type: (the type's batched function, start, stop) within a
# batch slice; the function is the op table's ``batched`` entry for that type.
Segment = tuple[Callable[..., Any], int, int]
# The colour geometric ops give the area they uncover: one value for every channel, or one
# value per channel. The batched kernels receive it from :func:`channel_fill` as an int or a
# tuple of ints; the PIL kernels as it is given (the geometric ones pass it to :func:`pil_fill`).
Fill = float | Sequence[float]


def channel_fill(fill: float | Sequence[float], channels: int) -> int | tuple[int, ...]:
    """The colour the geometric ops give the area they uncover, as both backends take it (the
    PIL reference ops and the batched tensor ops): an int when every channel gets the same
    value, else a tuple of one int per channel. ``fill`` is one value, or one per channel."""
    if isinstance(fill, (int, float)):
        return int(fill)
    values = tuple(int(v) for v in fill)
    if len(values) not in (1, channels):
        raise ValueError(f"fill has {len(values)} values for images of {channels} channels (give 1 or {channels})")
    return values[0] if len(set(values)) == 1 else values


def pil_fill(img: Image.Image, fill: int | Sequence[int]) -> int | tuple[int, ...]:
    """PIL's colour for ``fill``: one value for every band, or one value per band."""
    bands = len(img.getbands())
    colour = channel_fill(fill, bands)
    return colour if bands == 1 or isinstance(colour, tuple) else (colour,) * bands


def check(images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"expected a uint8 batch of shape (N, 1|3, H, W), got {tuple(images.shape)} {images.dtype}"
        )


def rows(x: Tensor, index: Tensor) -> Tensor:
    """``x.index_select(0, index)`` through a 2-D view: on CPU several times faster for a
    batch of images than on the 4-D tensor."""
    return x.reshape(x.shape[0], -1).index_select(0, index).view(index.shape[0], *x.shape[1:])


def to_uint8(x: Tensor) -> Tensor:
    """Clip to [0, 255] and truncate toward zero, as PIL's C casts do. (Through int32: on
    CPU a direct float -> uint8 cast is about twice as slow.)"""
    return x.clamp_(0, 255).to(torch.int32).to(torch.uint8)


@functools.lru_cache(maxsize=64)
def ramp(device: torch.device) -> Tensor:
    return torch.arange(256, device=device, dtype=torch.int64)


@functools.lru_cache(maxsize=64)
def centres(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``x + 0.5`` (1, 1, W) and ``y + 0.5`` (1, H, 1), float64."""
    xs = torch.arange(w, device=device, dtype=torch.float64).view(1, 1, w) + 0.5
    ys = torch.arange(h, device=device, dtype=torch.float64).view(1, h, 1) + 0.5
    return xs, ys
