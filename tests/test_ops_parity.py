"""The batched tensor path against the PIL reference, op by op, on real images.

Tolerances (absolute pixel difference on uint8, and the share of pixels allowed to
differ at all), by kernel family (the op table's, ``awsaa.augment.table``: every op type of the
space is tested through its row), measured on Fashion-MNIST and on RGB images made of three of
its planes:

* lut (AutoContrast, Equalize, Invert, Posterize, Solarize): exact;
* blend (Brightness, Color, Contrast, Sharpness): at most 1 on at most 0.1% of
  pixels (float rounding; exact on this machine's CPU);
* affine (Translate and Rotate, nearest): exact (Pillow's 16.16 fixed-point and row-accumulated
  source coordinates reproduced; flooring the float coordinates instead put Rotate one source
  pixel off for 16 of 121 angles in [-30, 30] on photographs);
* shear (ShearX, ShearY, bicubic): exact on flat areas; elsewhere at most 1 on at most 0.2% of pixels (PIL's
  cubic convolution in its own form, in float32 where PIL computes in float64; seen: 0.01%
  of pixels on photo crops, 0.03% on random images, 0.10% for the worst op and sign there).

Three image sets: Fashion-MNIST (gray), RGB images made of three Fashion-MNIST planes, and
crops of a real colour photograph (``photo_crops``), on which rounding differences show.
"""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from awsaa import SearchSpace
from awsaa.augment import pil_ops, tensor_ops
from awsaa.augment.table import KERNELS, OP_TYPES

SPACE = SearchSpace.default()
# (max |diff|, share of pixels allowed to differ) by kernel family; an op type's is its family's
TOL_OF_KERNEL = {"lut": (0, 0.0), "blend": (1, 0.001), "affine": (0, 0.0), "shear": (1, 0.002)}
TOL = {name: TOL_OF_KERNEL[row.kernel] for name, row in OP_TYPES.items()}
SHEAR = {name for name, row in OP_TYPES.items() if row.kernel == "shear"}
GEOMETRIC = [name for name, row in OP_TYPES.items() if row.kernel in ("affine", "shear")]


def to_pil(img: torch.Tensor) -> Image.Image:
    arr = img.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


def from_pil(im: Image.Image) -> torch.Tensor:
    arr = np.asarray(im)
    return torch.from_numpy(arr.copy()).reshape(im.height, im.width, -1).permute(2, 0, 1)


def compare(out: torch.Tensor, ref: torch.Tensor, tol: tuple[int, float], what: str) -> None:
    diff = (out.int() - ref.int()).abs()
    max_abs, max_frac = tol
    frac = (diff > 0).float().mean().item()
    assert diff.max().item() <= max_abs, f"{what}: max |diff| {diff.max().item()} > {max_abs}"
    assert frac <= max_frac, f"{what}: {frac:.4%} of pixels differ (allowed {max_frac:.2%})"


def test_every_kernel_family_has_a_tolerance():
    assert set(TOL_OF_KERNEL) == set(KERNELS)


@pytest.mark.parametrize("kind", ["gray", "rgb", "photo"])
@pytest.mark.parametrize("op", SPACE.ops, ids=SPACE.names)
def test_tensor_op_matches_pil_reference(op, kind, gray_images, rgb_images, photo_crops):
    images = {"gray": gray_images, "rgb": rgb_images, "photo": photo_crops}[kind]
    fill = 0 if kind == "gray" else 128
    for sign in (1, -1) if op.signed else (1,):
        out = tensor_ops.apply_op(images, op, torch.full((len(images),), sign), fill)
        ref = torch.stack([from_pil(pil_ops.apply_op(to_pil(im), op, sign, fill)) for im in images])
        assert out.shape == ref.shape and out.dtype == torch.uint8
        compare(out, ref, TOL[op.type], f"{op.name} sign {sign} ({kind})")


@pytest.mark.parametrize("op", [op for op in SPACE.ops if op.type in SHEAR], ids=lambda op: op.name)
def test_shear_keeps_flat_areas_exactly_flat(op):
    """Every grey level, flat: the batched bicubic shear gives PIL's pixels exactly. (A
    weighted sum of the taps in float32 gave 254 for 255 on 38% of a flat image, always
    lower: a bias, not noise.)"""
    flat = torch.arange(256, dtype=torch.uint8).view(256, 1, 1, 1).expand(256, 3, 16, 16).contiguous()
    for sign in (1, -1):
        out = tensor_ops.apply_op(flat, op, torch.full((256,), sign), 7)
        ref = torch.stack([from_pil(pil_ops.apply_op(to_pil(im), op, sign, 7)) for im in flat])
        assert torch.equal(out, ref), f"{op.name} sign {sign}"


def test_shear_bound_on_random_images():
    """Random pixels, the hardest case for rounding: at most 1, on at most 0.2% of pixels."""
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for op in (op for op in SPACE.ops if op.type in SHEAR):
        for sign in (1, -1):
            out = tensor_ops.apply_op(x, op, torch.full((64,), sign), 128)
            ref = torch.stack([from_pil(pil_ops.apply_op(to_pil(im), op, sign, 128)) for im in x])
            compare(out, ref, TOL[op.type], f"{op.name} sign {sign} (random)")


def test_rotate_is_exact_at_every_angle_on_photographs(photo_crops):
    """121 angles in [-30, 30] (0.5 degree steps): Pillow maps a rotation in 16.16 fixed point,
    and so must the batched path, source pixel for source pixel."""
    x = photo_crops[:8]
    for angle in np.arange(-30, 30.01, 0.5).tolist():
        out = tensor_ops.apply_type(x, "Rotate", torch.full((len(x),), angle, dtype=torch.float64), fill=128)
        ref = torch.stack([from_pil(to_pil(im).rotate(angle, resample=Image.NEAREST, fillcolor=(128,) * 3))
                           for im in x])
        assert torch.equal(out, ref), f"Rotate {angle}"


@pytest.mark.parametrize("op_type", GEOMETRIC)
def test_geometric_maps_are_the_same_for_few_and_many_distinct_values(op_type, photo_crops):
    """The geometric kernels build their maps once per distinct value: cached for a few values
    (the discrete ops), built each call for many (continuous magnitudes). Both must give what
    each image alone gives, and the discrete ops must be what PIL gives (the parity test)."""
    g = torch.Generator().manual_seed(7)
    n = len(photo_crops)
    scale = 60.0 if op_type == "Rotate" else 0.6
    many = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * scale  # n distinct values
    few = many[torch.randint(0, 3, (n,), generator=g)]  # 3 distinct values
    assert len(set(many.tolist())) > tensor_ops._CACHED_VALUES >= len(set(few.tolist()))
    for values in (many, few):
        batch = tensor_ops.apply_type(photo_crops, op_type, values, fill=128)
        alone = torch.cat([tensor_ops.apply_type(photo_crops[i:i + 1], op_type, values[i:i + 1], fill=128)
                           for i in range(n)])
        assert torch.equal(batch, alone)
        assert (batch != photo_crops).float().mean() > 0.05


def test_autocontrast_is_exact_for_every_range():
    """Every range hi - lo in 1..255, at both ends of the value scale: the table is PIL's
    (its scale is a correctly rounded 255 / (hi - lo), not a reciprocal multiplied)."""
    from PIL import ImageOps

    ramp = torch.arange(256, dtype=torch.uint8)
    images, refs = [], []
    for d in range(1, 256):
        for lo in (0, 255 - d, (255 - d) // 2):
            arr = ramp.clamp(lo, lo + d).view(1, 16, 16)
            images.append(arr)
            refs.append(torch.from_numpy(np.asarray(ImageOps.autocontrast(Image.fromarray(arr[0].numpy()))).copy()))
    out = tensor_ops.apply_type(torch.stack(images), "AutoContrast", torch.zeros(len(images), dtype=torch.float64))
    assert torch.equal(out[:, 0], torch.stack(refs))


def test_translation_coordinates_accumulate_as_pillow_does():
    """Pillow's ImagingScaleAffine starts at ``c + a/2`` and adds ``a`` once per column, rounding
    at each step; the batched path takes a ``cumsum`` of the same terms, which must be that
    loop bit for bit (4,000 random offsets and scales, 64 columns)."""
    g = torch.Generator().manual_seed(0)
    n, w = 4000, 64
    c = torch.rand(n, generator=g, dtype=torch.float64) * 80 - 40
    a = torch.rand(n, generator=g, dtype=torch.float64) * 2
    zero = torch.zeros(n, dtype=torch.float64)
    coeffs = torch.stack([a, zero, c, zero, torch.ones(n, dtype=torch.float64), zero], 1)
    _, col_x, _, _ = tensor_ops._affine_maps(coeffs, 8, w)
    xo, cols = c + a * 0.5, []
    for _ in range(w):  # Pillow's loop: xo += a, floored per column
        cols.append(torch.floor(xo))
        xo = xo + a
    assert torch.equal(col_x >> 16, torch.stack(cols, 1).long())


def test_invert_posterize_solarize_are_exact_for_every_value_and_setting():
    """Applied as uint8 arithmetic, not tables: every pixel value 0..255 under every bit count
    0..8 and every threshold from -1 to 257 in half steps (fractional ones included) is PIL's."""
    from PIL import ImageOps

    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    im = Image.fromarray(ramp[0, 0].numpy())
    out = tensor_ops.apply_type(ramp, "Invert", torch.zeros(1, dtype=torch.float64))
    assert torch.equal(out[0, 0], torch.from_numpy(np.asarray(ImageOps.invert(im)).copy()))
    for bits in range(0, 9):
        out = tensor_ops.apply_type(ramp, "Posterize", torch.full((1,), float(bits), dtype=torch.float64))
        ref = torch.from_numpy(np.asarray(ImageOps.posterize(im, bits)).copy()) if bits else torch.zeros(16, 16)
        assert torch.equal(out[0, 0], ref.to(torch.uint8)), f"Posterize {bits}"
    for threshold in np.arange(-1, 257.01, 0.5).tolist():
        out = tensor_ops.apply_type(ramp, "Solarize", torch.full((1,), threshold, dtype=torch.float64))
        ref = torch.from_numpy(np.asarray(ImageOps.solarize(im, threshold)).copy())
        assert torch.equal(out[0, 0], ref), f"Solarize {threshold}"


@pytest.mark.parametrize("op", SPACE.ops, ids=SPACE.names)
def test_ops_change_real_images(op, photo_crops):
    """Guard against a parity test passing because both paths do nothing: every op changes
    the photo crops. (Not always the Fashion-MNIST planes: they span 0..255, which
    AutoContrast leaves as it is.)"""
    out = tensor_ops.apply_op(photo_crops, op, torch.ones(len(photo_crops)), 128)
    assert (out != photo_crops).float().mean() > 0.05


def test_signs_change_direction(gray_images):
    op = SPACE.ops[SPACE.index("Rotate_9")]
    n = len(gray_images)
    plus = tensor_ops.apply_op(gray_images, op, torch.ones(n), 0)
    minus = tensor_ops.apply_op(gray_images, op, -torch.ones(n), 0)
    assert not torch.equal(plus, minus)
    # Rotating +30 then -30 (nearest) restores the centre of the image closely.
    back = tensor_ops.apply_op(plus, op, -torch.ones(n), 0)
    centre = (slice(None), slice(None), slice(9, 19), slice(9, 19))
    assert (back[centre].int() - gray_images[centre].int()).abs().float().mean() < 20


def test_apply_pairs_is_per_sample(rgb_images):
    """Each image gets its own pair and signs: equal to applying them one image at a time."""
    g = torch.Generator().manual_seed(3)
    n = len(rgb_images)
    pairs = torch.randint(0, SPACE.num_ops, (n, 2), generator=g)
    signs = tensor_ops.draw_signs(n, 2, g)
    out = tensor_ops.apply_pairs(rgb_images, pairs, SPACE, signs, fill=128)
    for i in range(n):
        x = rgb_images[i : i + 1]
        for pos in range(2):
            x = tensor_ops.apply_op(x, SPACE.ops[pairs[i, pos]], signs[i : i + 1, pos], 128)
        assert torch.equal(out[i : i + 1], x), f"sample {i} pair {pairs[i].tolist()}"
    assert len({tuple(p) for p in pairs.tolist()}) > n // 2  # pairs really vary per sample


def test_apply_pairs_matches_pil_pairs(rgb_images):
    g = torch.Generator().manual_seed(4)
    n = len(rgb_images)
    pairs = torch.randint(0, SPACE.num_ops, (n, 2), generator=g)
    signs = tensor_ops.draw_signs(n, 2, g)
    out = tensor_ops.apply_pairs(rgb_images, pairs, SPACE, signs, fill=128)
    ref = torch.stack([
        from_pil(pil_ops.apply_pair(to_pil(rgb_images[i]), (SPACE.ops[pairs[i, 0]], SPACE.ops[pairs[i, 1]]),
                                    tuple(signs[i].tolist()), 128))
        for i in range(n)
    ])
    diff = (out.int() - ref.int()).abs().flatten(1)
    sheared = torch.tensor([any(SPACE.ops[k].type in SHEAR for k in p) for p in pairs.tolist()])
    assert sheared.any() and not sheared.all()
    # Without a shear both paths are exact op by op, so the composition is exact too.
    assert diff[~sheared].max() == 0
    # A shear's +-1 can be amplified by a following Equalize/AutoContrast: a looser bound.
    assert diff[sheared].float().mean() < 1.0


def test_crop_flip_cutout_match_pil(rgb_images):
    rng = random.Random(0)
    n = len(rgb_images)
    offsets = torch.tensor([[rng.randint(0, 8), rng.randint(0, 8)] for _ in range(n)])
    flips = torch.tensor([rng.random() < 0.5 for _ in range(n)])
    centers = torch.tensor([[rng.randrange(28), rng.randrange(28)] for _ in range(n)])
    x = tensor_ops.random_crop(rgb_images, 4, offsets)
    x = tensor_ops.hflip(x, flips)
    x = tensor_ops.cutout(x, 16, centers, fill=(10, 20, 30))
    for i in range(n):
        im = pil_ops.random_crop(to_pil(rgb_images[i]), 4, tuple(offsets[i].tolist()))
        im = pil_ops.hflip(im) if flips[i] else im
        ref = from_pil(im)
        # PIL reference cutout with one fill per channel: paste per plane
        y, xx = centers[i].tolist()
        ref[:, max(y - 8, 0) : min(y + 8, 28), max(xx - 8, 0) : min(xx + 8, 28)] = torch.tensor(
            [10, 20, 30], dtype=torch.uint8).view(3, 1, 1)
        assert torch.equal(x[i], ref), f"sample {i}"
    gray = tensor_ops.cutout(rgb_images[:1, :1], 16, centers[:1], fill=7)
    ref = from_pil(pil_ops.cutout(to_pil(rgb_images[0, :1]), 16, tuple(centers[0].tolist()), fill=7))
    assert torch.equal(gray[0], ref)


def test_random_draws_cover_the_ranges():
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(2000, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 0, 0] = 255  # a marker pixel that the crop moves
    out = tensor_ops.random_crop(images, 4, generator=g)
    assert 0.1 < (out.view(2000, -1).amax(1) > 0).float().mean() < 0.5  # marker often cropped away
    flipped = tensor_ops.hflip(images, generator=g)
    assert 0.45 < (flipped[:, 0, 0, 7] == 255).float().mean() < 0.55


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_matches_cpu(rgb_images):
    g = torch.Generator().manual_seed(5)
    pairs = torch.randint(0, SPACE.num_ops, (len(rgb_images), 2), generator=g)
    signs = tensor_ops.draw_signs(len(rgb_images), 2, g)
    cpu = tensor_ops.apply_pairs(rgb_images, pairs, SPACE, signs, 128)
    gpu = tensor_ops.apply_pairs(rgb_images.cuda(), pairs.cuda(), SPACE, signs.cuda(), 128).cpu()
    diff = (cpu.int() - gpu.int()).abs()
    assert (diff > 0).float().mean() < 0.01
