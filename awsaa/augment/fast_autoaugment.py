"""Fast AutoAugment's published policies (Lim et al., NeurIPS 2019), with its op semantics.

``fa_reduced_cifar10`` (493 sub-policies) and ``fa_reduced_imagenet`` (498) are the policies
FAA released (``FastAutoAugment/archive.py``, MIT License); ``fa_policies.json`` holds them
verbatim, generated from that file. Each sub-policy is two ``(op, probability, level)``
steps; per image one sub-policy is drawn uniformly and each step fires with its
probability. FAA's ops differ from the AWS space: continuous levels in [0, 1] mapped to
ranges, **nearest** resampling and black fill for every geometric op, a random sign for
the geometric ops only, enhance factors ``0.1 + 1.8 level``, and a small ``Cutout`` op
(``0.2 level`` of the width, colour (125, 123, 114)). FAA applies the policy first, then
crop and flip, then Cutout 16 in normalized space (a hole of the mean colour).

Two implementations: :class:`FAAPolicyAugment` on uint8 batches (the training path for
in-memory datasets) and :func:`apply_pil` on one PIL image (the reference, and the path for
ImageFolder datasets where the policy must run before the random-resized crop).
"""

from __future__ import annotations

import json
import random as _random
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from awsaa.augment.dispatch import apply_per_sample
from awsaa.augment.table import FAA_TYPES
from awsaa.errors import AWSAAError

POLICY_FILE = Path(__file__).with_name("fa_policies.json")
CUTOUT_COLOR = (125, 123, 114)

# op -> (low, high, random sign, awsaa kernel op type); value = low + (high - low) * level. Every
# op but Cutout is a row of the op table (``faa``); Cutout is FAA's alone: its side, as a
# fraction of the width.
OPS: dict[str, tuple[float, float, bool, str]] = {
    **{name: (row.faa.low, row.faa.high, row.faa.signed, row.name)
       for name, row in FAA_TYPES.items() if row.faa is not None},
    "Cutout": (0.0, 0.2, False, "Cutout"),
}
_NAMES = tuple(OPS)


@lru_cache(maxsize=4)
def published(name: str) -> list[list[tuple[str, float, float]]]:
    """The published sub-policies ``name`` (``fa_reduced_cifar10`` or ``fa_reduced_imagenet``)."""
    data = json.loads(POLICY_FILE.read_text())
    if name not in data or name == "source":
        raise AWSAAError(f"unknown Fast AutoAugment policy {name!r}")
    policies = [[(str(op), float(p), float(lv)) for op, p, lv in sub] for sub in data[name]]
    unknown = {op for sub in policies for op, _, _ in sub} - set(OPS)
    if unknown:
        raise AWSAAError(f"Fast AutoAugment policy {name} uses unknown ops {sorted(unknown)}")
    return policies


def _value(op: str, level: float) -> float:
    low, high, _, _ = OPS[op]
    return level * (high - low) + low


# ----------------------------------------------------------------------------- PIL reference


def _cutout_box(w: int, h: int, v: float, cx: float, cy: float) -> tuple[int, int, float, float]:
    x0 = int(max(0, cx - v / 2.0))
    y0 = int(max(0, cy - v / 2.0))
    return x0, y0, min(w, x0 + v), min(h, y0 + v)


def apply_pil(img: Image.Image, op: str, level: float,
              rng: _random.Random | np.random.Generator | ModuleType | None = None,
              sign: int | None = None, center: tuple[float, float] | None = None) -> Image.Image:
    """One FAA op on one PIL image; ``sign`` and the Cutout ``center`` are drawn when ``None``."""
    signed = OPS[op][2]
    v = _value(op, level)
    r = rng or _random
    if signed:
        if sign is None:
            sign = -1 if r.random() > 0.5 else 1
        v *= sign
    if op != "Cutout":  # every other op is its type's PIL kernel, FAA's black fill
        return FAA_TYPES[op].pil(img, v, 0)
    # Cutout: FAA's CutoutAbs. Its centre is np.random.uniform(w) -- low w, high 1 -- so it
    # lies in (1, w]; PIL's rectangle includes both end edges.
    w, h = img.size
    size = v * w
    if size <= 0:
        return img
    if center is None:
        center = (1.0 + (w - 1.0) * r.random(), 1.0 + (h - 1.0) * r.random())
    x0, y0, x1, y1 = _cutout_box(w, h, size, *center)
    out = img.copy()
    color = CUTOUT_COLOR if len(img.getbands()) == 3 else CUTOUT_COLOR[0]
    ImageDraw.Draw(out).rectangle((x0, y0, x1, y1), color)
    return out


def apply_policy_pil(img: Image.Image, policies: list, rng: _random.Random | None = None) -> Image.Image:
    """FAA's ``Augmentation``: a sub-policy drawn uniformly; each step fires with its probability."""
    r = rng or _random
    for op, prob, level in r.choice(policies):
        if r.random() > prob:
            continue
        img = apply_pil(img, op, level, r)
    return img


class PILPolicy:
    """A picklable per-image transform for DataLoader workers (ImageFolder datasets)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, img: Image.Image) -> Image.Image:
        return apply_policy_pil(img, published(self.name))


# ----------------------------------------------------------------------------- batched


def cutout_abs(images: Tensor, size: Tensor, centers: Tensor, color: tuple[int, ...] = CUTOUT_COLOR) -> Tensor:
    """FAA's CutoutAbs on a batch: side ``size`` (N,) px, centre ``centers`` (N, 2) = (x, y)."""
    n, c, h, w = images.shape
    size = size.to(images.device, torch.float64).view(n, 1, 1)
    cx = centers[:, 0].to(images.device, torch.float64).view(n, 1, 1)
    cy = centers[:, 1].to(images.device, torch.float64).view(n, 1, 1)
    x0 = torch.floor((cx - size / 2).clamp(min=0))
    y0 = torch.floor((cy - size / 2).clamp(min=0))
    x1 = torch.floor(torch.minimum(x0 + size, torch.full_like(x0, w)))  # PIL truncates the float corner
    y1 = torch.floor(torch.minimum(y0 + size, torch.full_like(y0, h)))
    xs = torch.arange(w, device=images.device).view(1, 1, w)
    ys = torch.arange(h, device=images.device).view(1, h, 1)
    hole = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1) & (size > 0)
    fill = torch.tensor(color[:c] if c == 3 else color[:1], dtype=torch.uint8, device=images.device).view(1, c, 1, 1)
    return torch.where(hole.unsqueeze(1), fill, images)


class FAAPolicyAugment:
    """A published FAA policy on uint8 batches: a sub-policy per image, steps gated by their
    probabilities, ops through awsaa's batched kernels with FAA's semantics."""

    policy_first = True  # FAA applies the policy before crop and flip

    def __init__(self, policies: list, fill: int = 0) -> None:
        self.fill = fill  # FAA's ops fill black (PIL's default)
        self.op = torch.tensor([[_NAMES.index(op) for op, _, _ in sub] for sub in policies])
        self.prob = torch.tensor([[p for _, p, _ in sub] for sub in policies], dtype=torch.float64)
        self.level = torch.tensor([[lv for _, _, lv in sub] for sub in policies], dtype=torch.float64)
        self.low = torch.tensor([OPS[n][0] for n in _NAMES], dtype=torch.float64)
        self.high = torch.tensor([OPS[n][1] for n in _NAMES], dtype=torch.float64)
        self.signed = torch.tensor([OPS[n][2] for n in _NAMES])
        self.kernel_types = tuple(OPS[n][3] for n in _NAMES if n != "Cutout")
        self.kernel_type_of = torch.tensor([self.kernel_types.index(OPS[n][3]) if n != "Cutout" else -1
                                            for n in _NAMES])
        self.is_factor = torch.tensor([n in FAA_TYPES and FAA_TYPES[n].factor for n in _NAMES])
        self.is_integer = torch.tensor([n in FAA_TYPES and FAA_TYPES[n].integer for n in _NAMES])
        self.cutout = _NAMES.index("Cutout")

    @classmethod
    def published(cls, name: str) -> FAAPolicyAugment:
        """A published FAA policy with FAA's semantics, fill included (black)."""
        return cls(published(name))

    def __call__(self, images: Tensor, copies: int, generator: torch.Generator | None) -> tuple[Tensor, None]:
        n, _, h, w = images.shape
        pick = torch.randint(0, self.op.shape[0], (n,), generator=generator)
        out = images
        for slot in range(2):
            op = self.op[pick, slot]
            fire = torch.rand(n, generator=generator, dtype=torch.float64) <= self.prob[pick, slot]
            value = self.low[op] + (self.high[op] - self.low[op]) * self.level[pick, slot]
            flip = torch.rand(n, generator=generator) > 0.5
            value = torch.where(self.signed[op] & flip, -value, value)
            value = torch.where(self.is_factor[op], value - 1.0, value)  # the blend kernel takes factor - 1
            value = torch.where(self.is_integer[op], value.floor(), value)  # FAA's int(value)
            is_cut = op == self.cutout
            out = apply_per_sample(out, self.kernel_type_of[op].clamp(min=0), self.kernel_types, value,
                                   self.fill, active=fire & ~is_cut)
            cut = (fire & is_cut).nonzero().squeeze(1)
            if cut.numel():
                u = torch.rand(len(cut), 2, generator=generator, dtype=torch.float64)
                centers = 1.0 + u * torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64)
                idx = cut.to(images.device)
                out = out.index_copy(0, idx, cutout_abs(out.index_select(0, idx), value[cut] * w, centers))
        return out, None
