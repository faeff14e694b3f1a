"""Fast AutoAugment's published policies and its op semantics, batched vs its PIL reference."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from awsaa.augment import fast_autoaugment as faa
from awsaa.augment import tensor_ops
from awsaa.augment.table import FAA_TYPES, OP_TYPES


def to_pil(x):
    return Image.fromarray(x.permute(1, 2, 0).numpy())


def from_pil(im):
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def test_published_policies_load_verbatim():
    c10, inet = faa.published("fa_reduced_cifar10"), faa.published("fa_reduced_imagenet")
    assert len(c10) == 493 and len(inet) == 498
    assert all(len(sub) == 2 for sub in c10 + inet)
    assert {op for sub in c10 for op, _, _ in sub} == set(faa.OPS)
    assert all(0 <= p <= 1 and 0 <= lv <= 1 for sub in c10 + inet for _, p, lv in sub)


@pytest.mark.parametrize("op", list(FAA_TYPES))
@pytest.mark.parametrize("level", [0.1, 0.77])
@pytest.mark.parametrize("kind", ["rgb", "photo"])
def test_batched_ops_match_faa_pil_semantics(op, level, kind, rgb_images, photo_crops):
    """FAA's ops, batched, against FAA's own PIL code: exact but for the enhance ops' float
    rounding (at most 0.1% of pixels), on Fashion-MNIST planes and on photograph crops."""
    x = (rgb_images if kind == "rgb" else photo_crops)[:16]
    signed, kernel = faa.OPS[op][2:]
    row = OP_TYPES[kernel]
    for sign in (1, -1) if signed else (1,):
        v = faa._value(op, level) * sign
        if row.factor:  # the blend kernel takes factor - 1
            v -= 1.0
        if row.integer:
            v = float(int(v))
        kinds = (kernel,)
        out = tensor_ops.apply_per_sample(x, torch.zeros(len(x), dtype=torch.long), kinds,
                                          torch.full((len(x),), v, dtype=torch.float64), fill=0)
        ref = torch.stack([from_pil(faa.apply_pil(to_pil(im), op, level, sign=sign)) for im in x])
        diff = (out.int() - ref.int()).abs()
        allowed = 0.001 if row.factor else 0.0
        assert (diff > 0).float().mean() <= allowed, f"{op} level {level} sign {sign}: {(diff > 0).float().mean():.4%}"


def test_cutout_abs_matches_pil(rgb_images):
    rng = random.Random(0)
    x = rgb_images[:32]
    levels = [rng.random() for _ in x]
    centers = [(1 + 27 * rng.random(), 1 + 27 * rng.random()) for _ in x]
    out = faa.cutout_abs(x, torch.tensor(levels, dtype=torch.float64) * 0.2 * 28,
                         torch.tensor(centers, dtype=torch.float64))
    for i in range(len(x)):
        ref = from_pil(faa.apply_pil(to_pil(x[i]), "Cutout", levels[i], center=centers[i]))
        assert torch.equal(out[i], ref), f"sample {i}"
    assert (out != x).any()


def test_policy_draws_per_image_and_gates_by_probability(rgb_images):
    aug = faa.FAAPolicyAugment([[("Invert", 1.0, 0.5), ("Invert", 0.0, 0.5)]])
    out, _ = aug(rgb_images, 1, torch.Generator().manual_seed(0))
    assert torch.equal(out, 255 - rgb_images)  # first step always, second never
    half = faa.FAAPolicyAugment([[("Invert", 0.5, 0.5), ("Invert", 0.0, 0.5)]])
    batch = rgb_images.repeat(8, 1, 1, 1)
    out, _ = half(batch, 1, torch.Generator().manual_seed(0))
    inverted = (out == 255 - batch).flatten(1).all(1).float().mean()
    assert 0.35 < inverted < 0.65
    full = faa.FAAPolicyAugment.published("fa_reduced_cifar10")
    out, _ = full(batch, 1, torch.Generator().manual_seed(1))
    changed = (out != batch).flatten(1).any(1).float().mean()
    assert 0.3 < changed < 1.0
