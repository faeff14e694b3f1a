"""The AWS search space: 36 discrete operations and the 1296 ordered pairs over them.

Fourteen PIL operation types; the eleven that take a magnitude use the 10-step grid of
the official release (``linspace(0, max, 10)``) at steps 3, 6 and 9 only, the three
others (AutoContrast, Equalize, Invert) take none: 11 x 3 + 3 = 36 ops, indexed in
sorted name order. An op's name is its type, plus ``_<grid step>`` where it has a
magnitude: ``Rotate_9`` rotates by 30 degrees. The types, their grids and signs are the op
table's (:mod:`awsaa.augment.table`), rows in the AWS space.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from awsaa.augment.kernels.common import channel_fill
from awsaa.augment.table import FAMILIES, LEVELS, OP_TYPES
from awsaa.errors import AWSAAError

__all__ = ["ALL_OPS", "FAMILIES", "LEVELS", "OpSpec", "SearchSpace", "channel_fill", "family_of"]


@dataclass(frozen=True)
class OpSpec:
    """One discrete op: a type and, for the types that take one, a magnitude."""

    name: str
    type: str
    level: int | None
    magnitude: float | None
    signed: bool

    @property
    def label(self) -> str:
        """A short human label, e.g. ``Rotate(30)``, ``Posterize(5 bits)``, ``Invert``."""
        if self.magnitude is None:
            return self.type
        magnitude = OP_TYPES[self.type].label.format(m=self.magnitude, s="±" if self.signed else "")
        return f"{self.type}({magnitude})"


def _all_ops() -> dict[str, OpSpec]:
    ops = {}
    for row in OP_TYPES.values():
        if not row.space:
            continue
        if row.grid is None:
            ops[row.name] = OpSpec(row.name, row.name, None, None, False)
        else:
            for lv in LEVELS:
                name = f"{row.name}_{lv}"
                ops[name] = OpSpec(name, row.name, lv, row.magnitude(lv), row.signed)
    return {name: ops[name] for name in sorted(ops)}


#: Every op the package knows, in sorted name order.
ALL_OPS: dict[str, OpSpec] = _all_ops()


class SearchSpace:
    """An ordered set of ops; a sub-policy is an ordered pair ``(op1, op2)`` of them.

    ``SearchSpace.default()`` is the AWS space of 36 ops (1296 pairs). A smaller space
    (a subset of the ops, e.g. without ``Invert``) is allowed; its ops keep sorted order.
    """

    def __init__(self, ops: Iterable[str]) -> None:
        names = list(ops)
        unknown = [n for n in names if n not in ALL_OPS]
        if unknown:
            raise AWSAAError(f"unknown op name(s) {unknown}; known ops: {', '.join(ALL_OPS)}")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise AWSAAError(f"duplicate op name(s) {dup} in search space")
        if not names:
            raise AWSAAError("a search space needs at least one op")
        self.ops: tuple[OpSpec, ...] = tuple(ALL_OPS[n] for n in sorted(names))
        self.names: tuple[str, ...] = tuple(op.name for op in self.ops)
        self._index = {n: i for i, n in enumerate(self.names)}

    @classmethod
    def default(cls) -> SearchSpace:
        return cls(ALL_OPS)

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    @property
    def num_pairs(self) -> int:
        return len(self.ops) ** 2

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise AWSAAError(f"op {name!r} is not in this search space") from None

    def pair_index(self, i: int, j: int) -> int:
        return i * self.num_ops + j

    def pair(self, k: int) -> tuple[int, int]:
        return divmod(int(k), self.num_ops)

    def pair_label(self, i: int, j: int) -> str:
        return f"{self.ops[i].label} -> {self.ops[j].label}"

    def __len__(self) -> int:
        return len(self.ops)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.names == other.names

    def __hash__(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        if self.names == tuple(ALL_OPS):
            return "SearchSpace.default()"
        return f"SearchSpace({list(self.names)!r})"


def family_of(op: str) -> str:
    """The family of op ``op`` (a name of :class:`~awsaa.augment.space.SearchSpace`)."""
    spec = ALL_OPS[op]
    family = OP_TYPES[spec.type].family
    if isinstance(family, tuple) and spec.level is not None:  # one per level of LEVELS
        return family[LEVELS.index(spec.level)]
    return str(family)
