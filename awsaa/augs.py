"""The names ``--aug`` takes (and a config's ``aug`` field), checked without building anything.

``none``, ``cutout``, torchvision's ``autoaugment``, ``randaugment`` (and ``randaugment_n{N}_m{M}``,
a RandAugment grid's cell), ``trivialaugment``, the AWS shared policy ``uniform``, Fast
AutoAugment's published policies (``fa_*``), the policies awsaa's own searches found
(``awsaa/policies/NAME.json``), or the path of an awsaa policy file. What each one does in
training is :mod:`awsaa.train.pipeline`'s; this module is the registry of names only, so a
config can check ``aug`` on load without importing the trainer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from awsaa.errors import AWSAAError
from awsaa.policy import Policy

TORCHVISION_AUGS = ("autoaugment", "randaugment", "trivialaugment")
FAA_AUGS = ("fa_reduced_cifar10", "fa_reduced_imagenet")
# Policies found by awsaa's own searches, shipped with the package (awsaa/policies/NAME.json,
# provenance in each file's meta): ``--aug NAME``, as Fast AutoAugment's are.
PUBLISHED_DIR = Path(__file__).resolve().parent / "policies"
PUBLISHED = {p.stem: p for p in sorted(PUBLISHED_DIR.glob("*.json"))}
AUG_NAMES = ("none", "cutout", *TORCHVISION_AUGS, "uniform", *FAA_AUGS, *PUBLISHED)


def policy_file(aug: str) -> str:
    """The policy file behind ``aug``: a published policy's, else ``aug`` itself."""
    return str(PUBLISHED[aug]) if aug in PUBLISHED else aug


RANDAUGMENT_NM = re.compile(r"randaugment_n(\d{1,2})_m(\d{1,2})")


def randaugment_nm(aug: str) -> tuple[int, int] | None:
    """(N, M) of ``randaugment_n{N}_m{M}`` (a RandAugment grid's cell), else None."""
    m = RANDAUGMENT_NM.fullmatch(aug)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_aug(aug: str) -> None:
    """Raise a one-line error unless ``aug`` is a known name or a valid policy file."""
    if aug in PUBLISHED:
        Policy.load(PUBLISHED[aug])
        return
    if aug in AUG_NAMES:
        return
    nm = randaugment_nm(aug)
    if nm is not None:
        if not (1 <= nm[0] <= 14 and 0 <= nm[1] <= 30):
            raise AWSAAError(f"aug {aug}: RandAugment takes N in 1-14 ops and magnitude M in 0-30, got N {nm[0]}, "
                             f"M {nm[1]}")
        return
    if aug.endswith(".json") or os.sep in aug or Path(aug).exists():
        Policy.load(aug)  # raises AWSAAError naming the problem
        return
    raise AWSAAError(f"unknown aug {aug!r}; choose from {', '.join(AUG_NAMES)}, randaugment_n<N>_m<M>, or give a "
                     f"policy .json file")
