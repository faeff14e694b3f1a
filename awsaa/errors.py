"""The project's own error type.

Every error a user can cause (a bad config, policy file, checkpoint, dataset path or
address) is raised as :class:`AWSAAError` with a one-line message that names what is
wrong. The command-line tools print that line to stderr and exit with status 2; any
other exception is a bug.
"""

from __future__ import annotations

import numbers


class AWSAAError(Exception):
    """A user-facing error whose message is one line naming the problem."""

    def __init__(self, message: str) -> None:
        # Keep messages to one line so the CLI can print them as they are.
        super().__init__(" ".join(str(message).split()))


def check_int(value: object, name: str, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in [low, high) for the Python API, else a TypeError or ValueError
    naming ``name`` (bools, floats and strings are not ints; seeds end at 2**64, where torch's
    generators do)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy's ints are Integral
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}"[:200])
    value = int(value)
    if value < low or (high is not None and value >= high):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}"[:200])
    return value


GENERATOR_SEED_END = 2**64  # torch.Generator.manual_seed takes seeds below this
