"""The op table: one row per op type, and every per-type lookup of the package built from it.

A row says all there is to say about an op type: its magnitude grid in the AWS space and
whether the AWS op takes a random sign, its family in the search's report, its label, its
PIL reference kernel, its batched kernel (the family, :mod:`awsaa.augment.kernels`, and the
family's function for this type), and the Fast AutoAugment op that runs as it. The AWS space
(:mod:`~awsaa.augment.space`), both backends (:mod:`~awsaa.augment.pil_ops`,
:mod:`~awsaa.augment.dispatch`) and Fast AutoAugment (:mod:`~awsaa.augment.fast_autoaugment`)
read it; adding or fixing an op is a row here, plus its kernels where they are new.

An op's parameter ``v``, as both kernels take it: the signed magnitude (shear, fraction of
the size for Translate, degrees for Rotate), the bits (Posterize), the threshold (Solarize);
for the blend family, the enhance factor (PIL) or the factor - 1 (batched; the AWS op's
factor is ``1 ± magnitude``). The lut ops without a magnitude ignore it.

Rows are in the order of AutoAugment's op list, which Fast AutoAugment keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from PIL import Image

from awsaa.augment.kernels import affine, blend, lut, shear

#: Grid steps of the official 10-step magnitude grid that the search space uses.
LEVELS = (3, 6, 9)

# The op families the search's report and the synthetic reward speak of (RESULTS.md 4), in
# the report's order; a row names one for every level, or one per level of LEVELS.
FAMILIES = ("destructive", "strong geometric", "mild geometric", "strong colour", "mild colour", "histogram")
GEOMETRIC = ("mild geometric", "strong geometric", "strong geometric")
COLOUR = ("mild colour", "mild colour", "strong colour")

#: The batched kernel families: name -> the family's kernel, one call on a run of samples.
KERNELS = {"lut": lut.kernel, "blend": blend.kernel, "affine": affine.kernel, "shear": shear.kernel}

PILKernel = Callable[[Image.Image, float, int | Sequence[int]], Image.Image]


@dataclass(frozen=True)
class FAA:
    """Fast AutoAugment's op ``name``, which runs as the row's type: its value at level ``l`` in
    [0, 1] is ``low + (high - low) l``, with a random sign where ``signed``."""

    name: str
    low: float
    high: float
    signed: bool = False


@dataclass(frozen=True)
class OpType:
    """One op type. ``grid``: the magnitude at steps 0 and 9 of the official 10-step grid
    (``linspace(lo, hi, 10)``), None for a type without one; ``signed``: the AWS op takes a
    random sign; ``integer``: the parameter is a whole number (Posterize's bits: the AWS grid
    is rounded, FAA's value truncated); ``family``: the report's (one, or one per level);
    ``label``: the format of the magnitude in a label, ``{m}`` the magnitude and ``{s}`` "±"
    for a signed op; ``pil``: ``(image, v, fill colour) -> image``; ``kernel``: the batched
    family; ``batched``: that family's function for this type; ``faa``: the FAA op that runs
    as this type; ``space``: the type is in the AWS space (else a kernel type for FAA only)."""

    name: str
    _: KW_ONLY
    grid: tuple[float, float] | None = None
    signed: bool = False
    integer: bool = False
    family: str | tuple[str, str, str] = ""
    label: str = ""
    pil: PILKernel
    kernel: str
    batched: Callable[..., Any]
    faa: FAA | None = None
    space: bool = True

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"op type {self.name}: unknown kernel family {self.kernel!r}")
        if isinstance(self.family, tuple) and self.grid is None:
            raise ValueError(f"op type {self.name}: a family per level, but no magnitude grid")

    @property
    def factor(self) -> bool:
        """The parameter is an enhance factor: PIL's kernel takes it, the batched one the factor - 1."""
        return self.kernel == "blend"

    def magnitude(self, level: int) -> float:
        """The magnitude at grid step ``level`` (``linspace`` without its float noise)."""
        if self.grid is None:
            raise ValueError(f"op type {self.name} takes no magnitude")
        lo, hi = self.grid
        m = lo + (hi - lo) * level / 9
        return float(round(m)) if self.integer else m


_ROWS = (
    OpType("ShearX", grid=(0.0, 0.3), signed=True, family=GEOMETRIC, label="{s}{m:.3g}",
           pil=shear.shear_x_pil, kernel="shear", batched=shear.shear_x),
    OpType("ShearXNearest", space=False,
           pil=affine.shear_x_nearest_pil, kernel="affine", batched=affine.shear_x_nearest,
           faa=FAA("ShearX", -0.3, 0.3, signed=True)),
    OpType("ShearY", grid=(0.0, 0.3), signed=True, family=GEOMETRIC, label="{s}{m:.3g}",
           pil=shear.shear_y_pil, kernel="shear", batched=shear.shear_y),
    OpType("ShearYNearest", space=False,
           pil=affine.shear_y_nearest_pil, kernel="affine", batched=affine.shear_y_nearest,
           faa=FAA("ShearY", -0.3, 0.3, signed=True)),
    OpType("TranslateX", grid=(0.0, 150 / 331), signed=True, family=GEOMETRIC, label="{s}{m:.3g}",
           pil=affine.translate_x_pil, kernel="affine", batched=affine.translate_x,
           faa=FAA("TranslateX", -0.45, 0.45, signed=True)),
    OpType("TranslateY", grid=(0.0, 150 / 331), signed=True, family=GEOMETRIC, label="{s}{m:.3g}",
           pil=affine.translate_y_pil, kernel="affine", batched=affine.translate_y,
           faa=FAA("TranslateY", -0.45, 0.45, signed=True)),
    OpType("Rotate", grid=(0.0, 30.0), signed=True, family=GEOMETRIC, label="{s}{m:.3g}",
           pil=affine.rotate_pil, kernel="affine", batched=affine.rotate,
           faa=FAA("Rotate", -30.0, 30.0, signed=True)),
    OpType("AutoContrast", family="histogram",
           pil=lut.autocontrast_pil, kernel="lut", batched=lut.autocontrast, faa=FAA("AutoContrast", 0.0, 1.0)),
    OpType("Invert", family="destructive",
           pil=lut.invert_pil, kernel="lut", batched=lut.invert, faa=FAA("Invert", 0.0, 1.0)),
    OpType("Equalize", family="histogram",
           pil=lut.equalize_pil, kernel="lut", batched=lut.equalize, faa=FAA("Equalize", 0.0, 1.0)),
    OpType("Solarize", grid=(256.0, 0.0), family="destructive", label="{m:.1f}",
           pil=lut.solarize_pil, kernel="lut", batched=lut.solarize, faa=FAA("Solarize", 0.0, 256.0)),
    OpType("Posterize", grid=(8.0, 4.0), integer=True, family=COLOUR, label="{m:.0f} bits",
           pil=lut.posterize_pil, kernel="lut", batched=lut.posterize, faa=FAA("Posterize", 4.0, 8.0)),
    OpType("Contrast", grid=(0.0, 0.9), signed=True, family=COLOUR, label="1{s}{m:.1f}",
           pil=blend.contrast_pil, kernel="blend", batched=blend.contrast, faa=FAA("Contrast", 0.1, 1.9)),
    OpType("Color", grid=(0.0, 0.9), signed=True, family=COLOUR, label="1{s}{m:.1f}",
           pil=blend.color_pil, kernel="blend", batched=blend.color, faa=FAA("Color", 0.1, 1.9)),
    OpType("Brightness", grid=(0.0, 0.9), signed=True, family=COLOUR, label="1{s}{m:.1f}",
           pil=blend.brightness_pil, kernel="blend", batched=blend.brightness, faa=FAA("Brightness", 0.1, 1.9)),
    OpType("Sharpness", grid=(0.0, 0.9), signed=True, family=COLOUR, label="1{s}{m:.1f}",
           pil=blend.sharpness_pil, kernel="blend", batched=blend.sharpness, faa=FAA("Sharpness", 0.1, 1.9)),
)

#: Every op type, by name: the AWS space's and the kernel types that only FAA's ops use.
OP_TYPES: dict[str, OpType] = {row.name: row for row in _ROWS}
#: Fast AutoAugment's ops (but Cutout, which is FAA's alone), by FAA's name, in FAA's order.
FAA_TYPES: dict[str, OpType] = {row.faa.name: row for row in _ROWS if row.faa is not None}
