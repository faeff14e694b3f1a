"""The field types every config section shares, and the constants their bounds come from."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, Strict

# Strict scalars: YAML's ``2.5`` is not an integer, ``"yes"`` is not a boolean, ``"0.1"`` and
# ``true`` are not numbers; an integer is a number (``lr: 1``: pydantic's strict float takes it).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Positive = Annotated[Int, Field(ge=1)]
# Seeds: run seeds are mixed with loop and trajectory numbers (seed * 1_000_003 + ...) into
# torch generator seeds, which end at 2**64; below 2**32 (numpy's range) every mix fits.
SEED_END = 2**32
Seed = Annotated[Int, Field(ge=0, lt=SEED_END)]
# Ray schedules resources in steps of 0.0001: a smaller positive amount is no amount.
RESOURCE_STEP = 0.0001
NonNegative = Annotated[Int, Field(ge=0)]
Fraction = Annotated[Float, Field(ge=0, lt=1)]  # in [0, 1)
FillValue = Annotated[Int, Field(ge=0, le=255)]
# A validation split: a number of images, or a fraction of the training set in (0, 1).
ValSize = NonNegative | Annotated[Float, Field(gt=0, lt=1)]

# Every config section: a pydantic dataclass that refuses unknown keys.
# Every number finite: YAML's .inf and .nan are refused like any impossible value.
SECTION = ConfigDict(extra="forbid", validate_default=False, allow_inf_nan=False)
