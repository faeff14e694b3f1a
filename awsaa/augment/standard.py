"""The standard augmentations around a policy, on uint8 NCHW batches: random crop,
horizontal flip, Cutout (DeVries & Taylor). Their PIL references are in
:mod:`awsaa.augment.pil_ops`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from awsaa.augment.kernels.common import check


def random_crop(images: Tensor, padding: int = 4, offsets: Tensor | None = None, fill: int = 0,
                generator: torch.Generator | None = None) -> Tensor:
    """Pad by ``padding`` with ``fill`` and crop back at per-sample ``offsets`` (N, 2) = (top, left)."""
    check(images)
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
    check(images)
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
    check(images)
    n, c, h, w = images.shape
    if centers is None:
        centers = torch.stack([torch.randint(0, h, (n,), generator=generator),
                               torch.randint(0, w, (n,), generator=generator)], dim=1)
    hole = cutout_mask(n, h, w, length, centers.to(images.device))
    fill_t = torch.as_tensor(fill, dtype=torch.uint8, device=images.device).reshape(-1)
    fill_t = fill_t.view(1, -1, 1, 1).expand(n, c, h, w) if fill_t.numel() > 1 else fill_t.view(1, 1, 1, 1)
    return torch.where(hole.unsqueeze(1), fill_t, images)
