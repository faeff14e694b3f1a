"""Seeded, stratified splits: every class keeps its share in both parts."""

from __future__ import annotations

import torch
from torch import Tensor

from awsaa.errors import AWSAAError


def _quotas(counts: Tensor, size: int) -> Tensor:
    """Per-class sizes proportional to ``counts`` that add up to ``size`` exactly
    (largest remainder; ties go to the lower class index)."""
    total = int(counts.sum())
    exact = counts.double() * size / total
    q = exact.floor().long()
    short = size - int(q.sum())
    if short:
        order = sorted(range(len(counts)), key=lambda c: (-(exact[c] - q[c]).item(), c))
        for c in order[:short]:
            q[c] += 1
    return q


def stratified_subset(labels: Tensor, size: int, seed: int = 0) -> Tensor:
    """Indices (sorted) of ``size`` samples, each class in proportion, chosen with ``seed``."""
    labels = torch.as_tensor(labels).long().cpu()
    n = labels.numel()
    if not 0 <= size <= n:
        raise AWSAAError(f"cannot take {size} samples from a set of {n}")
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = _quotas(counts, size)
    g = torch.Generator().manual_seed(int(seed))
    picked = []
    for c, q in zip(classes.tolist(), quotas.tolist(), strict=True):
        members = (labels == c).nonzero().squeeze(1)
        picked.append(members[torch.randperm(members.numel(), generator=g)[:q]])
    return torch.cat(picked).sort().values


def stratified_split(labels: Tensor, val_size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(train_index, val_index)``: a stratified split with ``val_size`` validation samples."""
    labels = torch.as_tensor(labels).long().cpu()
    val = stratified_subset(labels, val_size, seed)
    mask = torch.ones(labels.numel(), dtype=torch.bool)
    mask[val] = False
    return mask.nonzero().squeeze(1), val
