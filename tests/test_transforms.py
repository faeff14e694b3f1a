import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from awsaa import AWSAugment, Cutout, Policy, SearchSpace
from awsaa.augment import pil_ops, tensor_ops

SPACE = SearchSpace.default()


def one_pair_policy(i: int, j: int) -> Policy:
    probs = torch.zeros(36, 36, dtype=torch.float64)
    probs[i, j] = 1.0
    return Policy(SPACE, probs)


def test_batch_gets_a_pair_per_sample_and_returns_them(rgb_images):
    t = AWSAugment(Policy.uniform(SPACE), generator=torch.Generator().manual_seed(0))
    out, pairs = t.forward_with_pairs(rgb_images)
    assert out.shape == rgb_images.shape and out.dtype == torch.uint8
    assert pairs.shape == (len(rgb_images), 2)
    assert len({tuple(p) for p in pairs.tolist()}) > len(rgb_images) // 2
    # the output is exactly those pairs applied with the same draws
    g = torch.Generator().manual_seed(0)
    pairs2 = Policy.uniform(SPACE).sample(len(rgb_images), g)
    signs = tensor_ops.draw_signs(len(rgb_images), 2, g)
    assert torch.equal(pairs, pairs2)
    assert torch.equal(out, tensor_ops.apply_pairs(rgb_images, pairs, SPACE, signs, 128))


def test_single_tensor_tv_image_and_pil(rgb_images):
    i, j = SPACE.index("Invert"), SPACE.index("Posterize_9")
    t = AWSAugment(one_pair_policy(i, j))
    x = rgb_images[0]
    expected = (255 - x) & 0xF0
    assert torch.equal(t(x), expected)
    img = tv_tensors.Image(x)
    out = t(img)
    assert isinstance(out, tv_tensors.Image) and torch.equal(out.as_subclass(torch.Tensor), expected)
    pil = Image.fromarray(x.permute(1, 2, 0).numpy())
    out_pil = t(pil)
    assert isinstance(out_pil, Image.Image)
    assert torch.equal(torch.from_numpy(np.asarray(out_pil).copy()).permute(2, 0, 1), expected)


def test_pil_path_uses_the_reference_ops(rgb_images):
    i = SPACE.index("Rotate_9")
    t = AWSAugment(one_pair_policy(i, i), fill=0, generator=torch.Generator().manual_seed(1))
    pil = Image.fromarray(rgb_images[0].permute(1, 2, 0).numpy())
    out = t(pil)
    # +-30 twice: one of 0, +60, -60 degrees
    candidates = [pil_ops.apply_pair(pil, (SPACE.ops[i], SPACE.ops[i]), s, 0)
                  for s in [(1, 1), (1, -1), (-1, -1)]]
    assert any(np.array_equal(np.asarray(out), np.asarray(c)) for c in candidates)


def test_composes_with_v2_transforms(rgb_images):
    pipeline = v2.Compose([
        v2.RandomHorizontalFlip(),
        AWSAugment(Policy.uniform(SPACE)),
        Cutout(16),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.5] * 3, [0.25] * 3),
    ])
    out = pipeline(rgb_images[0])
    assert out.shape == (3, 28, 28) and out.dtype == torch.float32
    batch = pipeline(rgb_images)
    assert batch.shape == rgb_images.shape
    img, label = pipeline(tv_tensors.Image(rgb_images[0]), 3)  # labels pass through
    assert label == 3 and img.shape == (3, 28, 28)


def test_loads_policy_from_a_file(tmp_path):
    one_pair_policy(0, 1).save(tmp_path / "p.json")
    t = AWSAugment(tmp_path / "p.json")
    _, pairs = t.forward_with_pairs(torch.zeros(5, 3, 8, 8, dtype=torch.uint8))
    assert pairs.tolist() == [[0, 1]] * 5


def test_refuses_float_images_and_boxes():
    t = AWSAugment(Policy.uniform(SPACE))
    with pytest.raises(TypeError, match="uint8"):
        t(torch.rand(3, 8, 8))
    boxes = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8))
    with pytest.raises(TypeError, match="BoundingBoxes"):
        t(tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8)), boxes)


def test_cutout_one_hole_per_sample():
    x = torch.full((100, 1, 32, 32), 200, dtype=torch.uint8)
    out = Cutout(16, fill=0, generator=torch.Generator().manual_seed(0))(x)
    holes = (out == 0).flatten(1).sum(1)
    assert holes.max() == 256 and holes.min() >= 64  # full 16x16 inside, clipped at corners
    assert len(set(holes.tolist())) > 5  # positions differ per sample


@pytest.mark.parametrize("mode", ["1", "P", "RGBA", "LA", "CMYK", "I", "F", "YCbCr", "HSV", "I;16"])
def test_other_pil_modes_are_refused_on_every_call(mode):
    """torchvision's v2 AutoAugment fails on these modes for some ops only (so at random); ours
    refuses them on every draw, whatever pair comes, with one message naming the mode."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).convert(mode)
    for t in (AWSAugment(Policy.uniform(), generator=torch.Generator().manual_seed(1)), Cutout(4)):
        for _ in range(30):
            with pytest.raises(TypeError, match=f"mode L or RGB, got mode {mode}"):
                t(img)


def test_l_and_rgb_pil_images_work_with_every_pair():
    arr = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    space = Policy.uniform().space
    for img in (Image.fromarray(arr), Image.fromarray(arr).convert("L")):
        for i in range(space.num_ops):
            probs = torch.zeros(space.num_ops, space.num_ops)
            probs[i, (i * 7) % space.num_ops] = 1.0
            out = AWSAugment(Policy(space, probs))(img)
            assert out.mode == img.mode and out.size == img.size
