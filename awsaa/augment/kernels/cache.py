"""The geometric kernels' source maps, built once per distinct parameter value.

Most calls draw their parameters from a few discrete values (the 36-op space has six per
geometric type: three magnitudes, two signs), so the geometric kernels build their source
maps once per distinct value, and cache them for a set of a few: the per-pixel coordinate
arithmetic then costs nothing, and each sample only looks its value's map up. Many
distinct values (continuous magnitudes) are built each call, by the same arithmetic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

CACHED_VALUES = 32  # a segment with at most this many distinct values uses the cache

# builder(key, distinct values (u,) float64, H, W, device) -> tables, each (u, ...)
Builder = Callable[[Any, Tensor, int, int, torch.device], tuple[Tensor, ...]]


@functools.lru_cache(maxsize=256)
def _cached_tables(builder: Builder, key: Any, values: tuple[float, ...], h: int, w: int,
                   device: torch.device) -> tuple[Tensor, ...]:
    return builder(key, torch.tensor(values, dtype=torch.float64), h, w, device)


def per_value(builder: Builder, key: Any, values: Tensor, h: int, w: int, device: torch.device) -> tuple[Tensor, ...]:
    """The tables of ``builder`` for ``key`` (what the builder maps: an op type's coefficient
    function), one row per sample of ``values``, built once per distinct value."""
    uniq, inverse = torch.unique(values, return_inverse=True)
    if uniq.numel() <= CACHED_VALUES:
        tables = _cached_tables(builder, key, tuple(uniq.tolist()), h, w, device)
    else:
        tables = builder(key, uniq, h, w, device)
    inverse = inverse.to(device)
    return tuple(table.index_select(0, inverse) for table in tables)
