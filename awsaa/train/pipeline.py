"""The training-time augmentation of uint8 batches, by ``--aug`` name or policy file.

Order (docs/design.md section 1, the AWS release): random crop (pad 4) -> horizontal flip ->
policy -> Cutout (16, black) -> normalize. Fast AutoAugment's policies keep FAA's own
order: policy -> crop -> flip -> Cutout (16, the mean colour: FAA cuts after normalizing).
Everything here works on whole uint8 NCHW batches on the batch's device; the policy
draws per image. ``--aug`` names (the registry of names, checked without this module, is
:mod:`awsaa.augs`):

``none``            crop + flip (the baseline; no Cutout)
``cutout``          crop + flip + Cutout
``autoaugment``     torchvision's ``v2.AutoAugment`` (its CIFAR-10, SVHN or ImageNet policy), per image, + Cutout
``randaugment``     torchvision's ``v2.RandAugment`` (N 2, M 9), image by image, + Cutout;
                    ``randaugment_n3_m14``: N ops of magnitude M (N in 1-14, M in 0-30)
``trivialaugment``  torchvision's ``v2.TrivialAugmentWide``, image by image, + Cutout
``uniform``         the AWS shared policy (every pair equally likely), + Cutout
``fa_reduced_cifar10``, ``fa_reduced_imagenet``
                    Fast AutoAugment's published policies with its op semantics, + Cutout
``PATH.json``       an awsaa policy file, + Cutout
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from torchvision.transforms import v2

from awsaa.augment import tensor_ops
from awsaa.augment.fast_autoaugment import FAAPolicyAugment
from awsaa.augs import (  # the names --aug takes; the unused ones stay importable from here
    AUG_NAMES,  # noqa: F401
    FAA_AUGS,
    PUBLISHED,  # noqa: F401
    PUBLISHED_DIR,  # noqa: F401
    RANDAUGMENT_NM,  # noqa: F401
    TORCHVISION_AUGS,
    check_aug,
    policy_file,
    randaugment_nm,
)
from awsaa.policy import Policy


class BatchAugment(Protocol):
    """The policy step of a :class:`Pipeline`: ``augment(images, copies, generator)`` takes a
    uint8 NCHW batch and returns the augmented batch and the (N, 2) op pairs drawn (``None``
    when the augmentation draws no AWS pairs). ``policy_first``: run before crop and flip
    (Fast AutoAugment's order) instead of after them."""

    policy_first: bool

    def __call__(self, images: Tensor, copies: int,
                 generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]: ...


class PolicyAugment:
    """An AWS policy: a pair drawn per image from ``policy`` and applied with the batched ops.

    With ``copies`` > 1 (Enlarged Batch) the batch holds ``copies`` consecutive copies of
    each image, and their pairs are drawn **without replacement** per image."""

    policy_first = False

    def __init__(self, policy: Policy, fill: int, pair_generator: torch.Generator | None = None) -> None:
        self.policy, self.fill = policy, fill
        self._flat = policy.probs().flatten().float()
        self.pair_generator = pair_generator  # draws the pairs when given (else the batch's generator)

    def draw(self, n: int, copies: int, generator: torch.Generator | None) -> Tensor:
        if self.pair_generator is not None:
            generator = self.pair_generator
        if copies == 1:
            return self.policy.sample(n, generator)
        images = n // copies
        nonzero = int((self._flat > 0).sum())
        replacement = copies > nonzero
        idx = torch.multinomial(self._flat.expand(images, -1), copies, replacement=replacement,
                                generator=generator).reshape(-1)
        k = self.policy.space.num_ops
        return torch.stack([idx // k, idx % k], dim=1)

    def __call__(self, images: Tensor, copies: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        pairs = self.draw(images.shape[0], copies, generator)
        out = tensor_ops.apply_pairs(images, pairs, self.policy.space, fill=self.fill, generator=generator)
        return out, pairs


class PerImageAugment:
    """A torchvision v2 transform applied image by image (for the comparison baselines)."""

    policy_first = False

    def __init__(self, transform: Callable[[Tensor], Tensor]) -> None:
        self.transform = transform

    def __call__(self, images: Tensor, copies: int, generator: torch.Generator | None) -> tuple[Tensor, None]:
        return torch.stack([self.transform(x) for x in images]), None


def make_policy_augment(aug: str, fill: int, dataset: str = "cifar10") -> BatchAugment | None:
    """The policy step of ``aug`` (``None`` for ``none`` and ``cutout``). torchvision's
    AutoAugment uses its ImageNet policy on ImageNet data, its SVHN policy on SVHN, else CIFAR-10's."""
    check_aug(aug)
    if aug in ("none", "cutout"):
        return None
    nm = randaugment_nm(aug)
    if nm is not None:
        return PerImageAugment(v2.RandAugment(num_ops=nm[0], magnitude=nm[1], fill=fill))
    if aug in TORCHVISION_AUGS:
        _AA_POLICY = {"imagenet": v2.AutoAugmentPolicy.IMAGENET, "reduced_imagenet": v2.AutoAugmentPolicy.IMAGENET,
                      "svhn": v2.AutoAugmentPolicy.SVHN}
        transform = {
            "autoaugment": lambda: v2.AutoAugment(_AA_POLICY.get(dataset, v2.AutoAugmentPolicy.CIFAR10), fill=fill),
            "randaugment": lambda: v2.RandAugment(fill=fill),
            "trivialaugment": lambda: v2.TrivialAugmentWide(fill=fill),
        }[aug]()
        return PerImageAugment(transform)
    if aug in FAA_AUGS:
        return FAAPolicyAugment.published(aug)  # FAA's own fill (black), whatever the dataset's
    if aug == "uniform":
        return PolicyAugment(Policy.uniform(), fill)
    return PolicyAugment(Policy.load(policy_file(aug)), fill)


@dataclass
class Pipeline:
    """Crop -> flip -> policy -> Cutout on a uint8 batch; ``copies`` augmented copies per image."""

    policy: BatchAugment | None  # PolicyAugment, PerImageAugment, FAAPolicyAugment or None
    crop_padding: int = 4
    hflip: bool = True
    cutout: int = 16
    cutout_fill: tuple[int, ...] = (0,)
    copies: int = 1

    @classmethod
    def from_config(cls, aug: str, fill: int, cutout: int, mean_fill: tuple[int, ...], crop_padding: int,
                    hflip: bool, copies: int = 1, dataset: str = "cifar10") -> Pipeline:
        """``mean_fill`` is the dataset mean as uint8, the Cutout colour of FAA's pipeline."""
        policy = make_policy_augment(aug, fill, dataset)
        cutout_fill = mean_fill if aug in FAA_AUGS else (0,)
        return cls(policy, crop_padding, hflip, 0 if aug == "none" else cutout, cutout_fill, copies)

    def __call__(self, images: Tensor, labels: Tensor, generator: torch.Generator | None = None,
                 crop: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Augment a batch; returns (images, labels, pairs drawn or None). ``crop=False``
        skips crop and flip (ImageFolder data arrives cropped and flipped by its loader)."""
        if self.copies > 1:
            images = images.repeat_interleave(self.copies, dim=0)
            labels = labels.repeat_interleave(self.copies, dim=0)
        pairs = None
        first = self.policy is not None and self.policy.policy_first
        if self.policy is not None and first:
            images, pairs = self.policy(images, self.copies, generator)
        if crop and self.crop_padding:
            images = tensor_ops.random_crop(images, self.crop_padding, generator=generator)
        if crop and self.hflip:
            images = tensor_ops.hflip(images, generator=generator)
        if self.policy is not None and not first:
            images, pairs = self.policy(images, self.copies, generator)
        if self.cutout:
            images = tensor_ops.cutout(images, self.cutout, fill=self.cutout_fill, generator=generator)
        return images, labels, pairs
