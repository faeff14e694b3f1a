"""The AWS search space: 36 discrete operations and the 1296 ordered pairs over them.

Fourteen PIL operation types; the eleven that take a magnitude use the 10-step grid of
the official release (``linspace(0, max, 10)``) at steps 3, 6 and 9 only, the three
others (AutoContrast, Equalize, Invert) take none: 11 x 3 + 3 = 36 ops, indexed in
sorted name order. An op's name is its type, plus ``_<grid step>`` where it has a
magnitude: ``Rotate_9`` rotates by 30 degrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from awsaa.errors import AWSAAError

#: Grid steps of the official 10-step magnitude grid that the search space uses.
LEVELS = (3, 6, 9)


def _grid(lo: float, hi: float, level: int) -> float:
    # np.linspace(lo, hi, 10)[level], without the float noise of linspace.
    return lo + (hi - lo) * level / 9


# type -> (magnitude at a grid step, unit shown to people, takes a random sign)
_TYPES = {
    "AutoContrast": (None, "", False),
    "Brightness": (lambda lv: _grid(0.0, 0.9, lv), "factor 1±", True),
    "Color": (lambda lv: _grid(0.0, 0.9, lv), "factor 1±", True),
    "Contrast": (lambda lv: _grid(0.0, 0.9, lv), "factor 1±", True),
    "Equalize": (None, "", False),
    "Invert": (None, "", False),
    "Posterize": (lambda lv: float(round(_grid(8.0, 4.0, lv))), "bits", False),
    "Rotate": (lambda lv: _grid(0.0, 30.0, lv), "deg", True),
    "Sharpness": (lambda lv: _grid(0.0, 0.9, lv), "factor 1±", True),
    "ShearX": (lambda lv: _grid(0.0, 0.3, lv), "", True),
    "ShearY": (lambda lv: _grid(0.0, 0.3, lv), "", True),
    "Solarize": (lambda lv: _grid(256.0, 0.0, lv), "threshold", False),
    "TranslateX": (lambda lv: _grid(0.0, 150 / 331, lv), "of width", True),
    "TranslateY": (lambda lv: _grid(0.0, 150 / 331, lv), "of height", True),
}

#: Op types whose result depends only on the pixel's own value and its channel's
#: statistics (no geometry, no neighbourhood).
COLOR_TYPES = frozenset(
    {"AutoContrast", "Brightness", "Color", "Contrast", "Equalize", "Invert", "Posterize", "Solarize"}
)
GEOMETRIC_TYPES = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})


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
        unit = _TYPES[self.type][1]
        if self.type == "Posterize":
            return f"{self.type}({int(self.magnitude)} bits)"
        if self.type == "Solarize":
            return f"{self.type}({self.magnitude:.1f})"
        sign = "±" if self.signed else ""
        if unit.startswith("factor"):
            return f"{self.type}(1{sign}{self.magnitude:.1f})"
        return f"{self.type}({sign}{self.magnitude:.3g})"


def _all_ops() -> dict[str, OpSpec]:
    ops = {}
    for type_, (mag, _unit, signed) in _TYPES.items():
        if mag is None:
            ops[type_] = OpSpec(type_, type_, None, None, False)
        else:
            for lv in LEVELS:
                name = f"{type_}_{lv}"
                ops[name] = OpSpec(name, type_, lv, mag(lv), signed)
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


def op_specs(ops: Sequence[OpSpec | str]) -> list[OpSpec]:
    """Resolve names to :class:`OpSpec` (specs pass through)."""
    return [ALL_OPS[o] if isinstance(o, str) else o for o in ops]


# The op families the search's report and the synthetic reward speak of (RESULTS.md 4).
FAMILIES = ("destructive", "strong geometric", "mild geometric", "strong colour", "mild colour", "histogram")


def family_of(op: str) -> str:
    """The family of op ``op`` (a name of :class:`~awsaa.augment.space.SearchSpace`)."""
    base, _, level = op.partition("_")
    if base in ("Invert", "Solarize"):
        return "destructive"
    if base in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"):
        return "mild geometric" if level == "3" else "strong geometric"
    if base in ("AutoContrast", "Equalize"):
        return "histogram"
    return "strong colour" if level == "9" else "mild colour"  # Brightness, Color, Contrast, Sharpness, Posterize


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
