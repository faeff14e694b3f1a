"""The batched path's planner: ops on uint8 NCHW batches, each kernel once per position.

Every function takes a ``uint8`` batch of shape ``(N, C, H, W)`` with ``C`` 1 or 3 and
returns a new one; per-sample parameters (signs, magnitudes) are tensors of length ``N``.
:func:`apply_pairs` sorts a batch by kernel family and op type (the op table's,
:mod:`awsaa.augment.table`) and runs each family's kernel (:mod:`awsaa.augment.kernels`) once
per pair position on all the samples that need it, whatever op and magnitude they drew.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from awsaa.augment.kernels.common import Fill, Segment, channel_fill, check, rows
from awsaa.augment.space import OpSpec, SearchSpace
from awsaa.augment.table import KERNELS, OP_TYPES


def apply_type(images: Tensor, op_type: str, values: Tensor, fill: Fill = 128) -> Tensor:
    """Apply op type ``op_type`` with a per-sample parameter ``values`` (N,): the signed
    magnitude (enhance offset, shear, translate fraction, degrees), the bits (Posterize),
    the threshold (Solarize); ignored by AutoContrast, Equalize and Invert."""
    check(images)
    n = images.shape[0]
    if op_type not in OP_TYPES:
        raise ValueError(f"unknown op type {op_type!r}")
    if n == 0:
        return images.clone()
    values = values.to("cpu", torch.float64).reshape(n)
    fill = channel_fill(fill, images.shape[1])
    row = OP_TYPES[op_type]
    return torch.cat(KERNELS[row.kernel](images, [(row.batched, 0, n)], values, fill))


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
    check(images)
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
    out = first.run(rows(images, first.index.to(images.device)),
                    _values(ops, pairs[:, 0], signs[:, 0]), fill)
    second = _Plan(type_of_op[pairs[:, 1]], types, everyone)
    out = second.run(rows(out, first.inverse()[second.index].to(images.device)),
                     _values(ops, pairs[:, 1], signs[:, 1]), fill)
    return rows(out, second.inverse().to(images.device))


@functools.lru_cache(maxsize=32)
def _kernel_order(types: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """The types in kernel order (``rank``), and each type's place in it (``position``)."""
    rank = torch.tensor(sorted(range(len(types)), key=lambda t: (OP_TYPES[types[t]].kernel, types[t])))
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
                row = OP_TYPES[types[int(rank[p])]]
                self.by_kernel.setdefault(row.kernel, []).append((row.batched, start, start + cnt))
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
            local = [(f, s - a, e - a) for f, s, e in segs]
            parts += KERNELS[kernel](selected[a:b], local, vals[a:b], fill)
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
    result = plan.run(rows(images, dev_index), values, channel_fill(fill, images.shape[1]))
    if active is None:  # every sample changed: undo the sort with one gather (index_copy_ is slower on CPU)
        return rows(result, plan.inverse().to(images.device))
    return images.index_copy(0, dev_index, result)
