"""Architectures, searched with their augmentation (NAS + AWS): the choice-block space at
WRN-10-1's scale and the versioned JSON file of one path through it.

The space ``wrn10_choice``: a 3x3 stem of 16 channels, then three stages of widths 16, 32 and
64 (strides 1, 2 and 2) of :data:`BLOCKS_PER_STAGE` choice blocks each, BN-ReLU, global
average pooling and a linear head. Each block is one op of :data:`OPS`:

- ``wrn``: WRN's pre-activation basic block (two 3x3 convolutions; a 1x1 projection of the
  shortcut where the shape changes);
- ``mb{k}_e{e}``: an inverted residual (MobileNetV2's, ProxylessNAS's MBConv): a 1x1
  expansion by ``e``, a ``k`` x ``k`` depthwise convolution, a 1x1 projection, with the
  identity shortcut where the block keeps its input's shape;
- ``zero``: the block's residual branch is zero, so the block passes its input on; only
  where the block keeps its input's shape (not at a stage's first block of stages 2 and 3).

That is 5^2 x 6^7 = 6,998,400 architectures. The networks themselves are built in
:mod:`awsaa.models.choice`; this module is plain Python (no torch), so the file can be
checked anywhere.
"""

from __future__ import annotations

import functools
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any

from awsaa.errors import AWSAAError
from awsaa.fileio import atomic_write_json, check_header, load_json_file

FORMAT = "awsaa.arch"
VERSION = 1
SPACE = "wrn10_choice"
STEM = 16
WIDTHS = (16, 32, 64)
STRIDES = (1, 2, 2)
BLOCKS_PER_STAGE = 3
OPS = ("wrn", "mb3_e3", "mb3_e6", "mb5_e3", "mb5_e6", "zero")


@dataclass(frozen=True)
class Slot:
    """One choice block: its input and output channels, its stride, and the ops it takes."""

    cin: int
    cout: int
    stride: int

    @property
    def keeps_shape(self) -> bool:
        return self.cin == self.cout and self.stride == 1

    @property
    def choices(self) -> tuple[str, ...]:
        return OPS if self.keeps_shape else tuple(op for op in OPS if op != "zero")


@functools.cache
def slots() -> tuple[Slot, ...]:
    """The space's choice blocks, in order (computed once: every architecture checks against them)."""
    out, cin = [], STEM
    for width, stride in zip(WIDTHS, STRIDES, strict=True):
        for b in range(BLOCKS_PER_STAGE):
            out.append(Slot(cin, width, stride if b == 0 else 1))
            cin = width
    return tuple(out)


def space_size() -> int:
    """How many architectures the space holds."""
    return math.prod(len(s.choices) for s in slots())


def mb_params(op: str) -> tuple[int, int]:
    """``(kernel, expansion)`` of an ``mb{k}_e{e}`` op."""
    k, e = op[2:].split("_e")
    return int(k), int(e)


def op_params(op: str, slot: Slot) -> int:
    """The parameters of ``op`` in ``slot`` (weights and batch-norm affines), counted without
    building it; ``tests/test_arch.py`` checks every count against the built module."""
    if op == "zero":
        return 0
    cin, cout = slot.cin, slot.cout
    if op == "wrn":  # BN, 3x3 conv, BN, 3x3 conv, and a 1x1 projection where the shape changes
        return 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout + (0 if slot.keeps_shape else cin * cout)
    kernel, expansion = mb_params(op)
    mid = cin * expansion  # 1x1 expansion, BN, k x k depthwise, BN, 1x1 projection, BN
    return cin * mid + 2 * mid + kernel * kernel * mid + 2 * mid + mid * cout + 2 * cout


def block_params(ops: tuple[str, ...] | list[str]) -> int:
    """The parameters of an architecture's choice blocks (what a budget counts: the stem and
    the head, the same for every architecture, are left out)."""
    return sum(op_params(op, slot) for op, slot in zip(ops, slots(), strict=True))


def ends_params(num_classes: int, in_channels: int) -> int:
    """The parameters every architecture shares: the 3x3 stem with its BN, the last BN and the
    linear head."""
    return 9 * in_channels * STEM + 2 * STEM + 2 * WIDTHS[-1] + WIDTHS[-1] * num_classes + num_classes


def cost_floors(costs: list[list[int]], max_zero_blocks: int | None) -> dict[tuple[int, int | None], int]:
    """The least total cost the blocks from ``i`` on can take with at most ``z`` of them
    ``zero`` (None: any number), for every ``(i, z)`` with ``z`` up to ``max_zero_blocks``;
    ``costs[i]`` gives block ``i``'s op costs in the order of its choices (parameters, or a
    latency table's microseconds). What a budgeted draw must leave room for."""
    where = slots()
    zs: list[int | None] = list(range(max_zero_blocks + 1)) if max_zero_blocks is not None else [None]
    floor: dict[tuple[int, int | None], int] = {(len(where), z): 0 for z in zs}
    for i in reversed(range(len(where))):
        for z in zs:
            options = []
            for op, c in zip(where[i].choices, costs[i], strict=True):
                if op != "zero":
                    options.append(c + floor[i + 1, z])
                elif z is None or z >= 1:
                    options.append(c + floor[i + 1, None if z is None else z - 1])
            floor[i, z] = min(options)
    return floor


def param_costs() -> list[list[int]]:
    """Each block's op parameters, in the order of its choices."""
    return [[op_params(op, s) for op in s.choices] for s in slots()]


def min_block_params(max_zero_blocks: int | None = None) -> int:
    """The fewest parameters an architecture's blocks can hold, with at most
    ``max_zero_blocks`` of them ``zero`` (None: any number)."""
    return cost_floors(param_costs(), max_zero_blocks)[0, max_zero_blocks]


@dataclass(frozen=True)
class Arch:
    """One path through the space: an op per choice block (``ops``), and free-form ``meta``
    (where it was found; not part of its identity)."""

    ops: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        where = slots()
        if len(self.ops) != len(where):
            raise AWSAAError(f"an architecture of {SPACE} has {len(where)} blocks, got {len(self.ops)}")
        for i, (op, slot) in enumerate(zip(self.ops, where, strict=True)):
            if not isinstance(op, str) or op not in OPS:
                raise AWSAAError(f"block {i}: unknown op {op!r}; choose from {', '.join(OPS)}")
            if op not in slot.choices:
                raise AWSAAError(f"block {i} changes the shape ({slot.cin} -> {slot.cout} channels, stride "
                                 f"{slot.stride}): it cannot be 'zero'")

    @classmethod
    def sample(cls, rng: random.Random) -> Arch:
        """An architecture drawn uniformly from the space."""
        return cls(tuple(rng.choice(s.choices) for s in slots()))

    @classmethod
    def uniform_op(cls, op: str) -> Arch:
        """Every block ``op`` (where a block cannot take it, ``wrn``): e.g. WRN-style throughout."""
        return cls(tuple(op if op in s.choices else "wrn" for s in slots()))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT, "version": VERSION, "space": SPACE, "ops": list(self.ops)}
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Arch:
        d = check_header(d, FORMAT, VERSION, {"format", "version", "space", "ops", "meta"}, "architecture")
        if d.get("space") != SPACE:
            raise AWSAAError(f"architecture space {d.get('space')!r} is unknown; this awsaa has {SPACE!r}")
        ops = d.get("ops")
        if not isinstance(ops, list):
            raise AWSAAError("architecture 'ops' must be a list of op names, one per block")
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise AWSAAError("architecture 'meta' must be a JSON object")
        return cls(tuple(ops), meta)

    def save(self, path: str | os.PathLike) -> None:
        """Write the architecture as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Arch:
        """Read and validate an architecture file; errors name the file and the problem."""
        return load_json_file(path, "architecture file", cls.from_dict)

    @property
    def block_params(self) -> int:
        """Parameters of the choice blocks (:func:`block_params`)."""
        return block_params(self.ops)

    def param_count(self, num_classes: int, in_channels: int) -> int:
        """Parameters of the whole network for ``num_classes`` classes of ``in_channels``-channel images."""
        return self.block_params + ends_params(num_classes, in_channels)

    def describe(self) -> str:
        """One line: the ops stage by stage."""
        n = BLOCKS_PER_STAGE
        return " / ".join(" ".join(self.ops[i:i + n]) for i in range(0, len(self.ops), n))


def is_arch_file(model: str) -> bool:
    """Whether a config's ``model`` names an architecture file rather than a registered model."""
    return model.endswith(".json")
