import numpy as np
import PIL.Image
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


# --------------------------------------------------------------------------- fill, as torchvision takes it
@pytest.mark.parametrize(("fill", "expected", "on_pil"), [
    (128, (128,) * 3, None), (127.5, (128,) * 3, None), (127.4, (127,) * 3, None), (None, (0,) * 3, None),
    ([128], (128,) * 3, None), ((10, 20, 30), (10, 20, 30), None), ([10.0, 20.0, 30.0], (10, 20, 30), None),
    ({tv_tensors.Image: (1, 2, 3), "others": 7}, (1, 2, 3), (7,) * 3), ({"others": 5}, (5,) * 3, None),
    ({torch.Tensor: 9}, (9,) * 3, (0,) * 3),  # no entry for PIL images and no "others": 0, as torchvision
])
def test_every_fill_form_torchvision_takes_gives_the_same_pixels_on_both_paths(fill, expected, on_pil):
    """A number (rounded to the nearest integer: 127.5 -> 128), one value per channel, None
    (0), a one-element list, or a dict by input type with "others": what the uncovered area
    shows, identically for a tv_tensors.Image and for the PIL path."""
    x = torch.full((3, 12, 32), 200, dtype=torch.uint8)
    i = SPACE.index("TranslateX_9")
    t = AWSAugment(one_pair_policy(i, i), fill=fill, generator=0)
    tensor_px, pil_px = set(), set()
    for _ in range(20):  # both signs come up; either way some columns are uncovered
        out = t(tv_tensors.Image(x)).as_subclass(torch.Tensor)
        tensor_px |= {tuple(p) for p in out.flatten(1).T.tolist()}
        pil_px |= {tuple(int(v) for v in p) for p in np.asarray(t(Image.fromarray(x.permute(1, 2, 0).numpy())))
                   .reshape(-1, 3)}
    assert tensor_px == {(200,) * 3, expected}
    assert pil_px == {(200,) * 3, on_pil or expected}


def test_a_dict_fill_picks_the_entry_for_the_input_type():
    i = SPACE.index("TranslateX_9")
    t = AWSAugment(one_pair_policy(i, i), fill={tv_tensors.Image: 11, PIL.Image.Image: 22, "others": 33},
                   generator=0)
    x = torch.full((1, 8, 32), 200, dtype=torch.uint8)
    assert set(t(tv_tensors.Image(x)).unique().tolist()) == {11, 200}
    assert set(t(x).unique().tolist()) == {33, 200}
    assert set(np.unique(np.asarray(t(Image.fromarray(x[0].numpy())))).tolist()) == {22, 200}


@pytest.mark.parametrize(("fill", "error", "pattern"), [
    (300, ValueError, r"in \[0, 255\].*300"), (-1, ValueError, r"in \[0, 255\]"), (float("nan"), ValueError, "finite"),
    ((0, 256, 0), ValueError, "256"), ({"others": 999}, ValueError, "999"), ([], ValueError, "empty"),
    ("white", TypeError, "fill"), (object(), TypeError, "fill"),
])
def test_out_of_range_and_unknown_fills_are_refused_when_the_transform_is_built(fill, error, pattern):
    """fill=300 used to fail at random (only when a geometric op was drawn, on the tensor path)."""
    with pytest.raises(error, match=pattern):
        AWSAugment(Policy.uniform(), fill=fill)


def test_a_fill_of_the_wrong_length_is_refused_on_every_call_before_any_draw():
    """Two values for a 3-channel image: refused whatever pair would come (an Invert-only
    policy never reads the fill, and is refused all the same), on both paths."""
    t = AWSAugment(one_pair_policy(SPACE.index("Invert"), SPACE.index("Invert")), fill=(1, 2))
    x = torch.zeros(3, 8, 8, dtype=torch.uint8)
    for inpt in (x, tv_tensors.Image(x), x.unsqueeze(0), Image.fromarray(x.permute(1, 2, 0).numpy())):
        with pytest.raises(ValueError, match="2 values for images of 3 channels"):
            t(inpt)


# --------------------------------------------------------------------------- draws in DataLoader workers
class _Draws(torch.utils.data.Dataset):
    def __init__(self, t):
        self.t = t

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return self.t.forward_with_pairs(torch.zeros(1, 4, 4, dtype=torch.uint8))[1][0]


def _loader_draws(context: str, generator, persistent: bool) -> list[list[int]]:
    torch.manual_seed(0)
    t = AWSAugment(Policy.uniform(), generator=generator)
    loader = torch.utils.data.DataLoader(_Draws(t), batch_size=4, num_workers=2, multiprocessing_context=context,
                                         persistent_workers=persistent)
    return [p for epoch in range(2) for batch in loader for p in batch.tolist()]


@pytest.mark.parametrize(("context", "generators", "persistent"), [
    ("fork", (torch.Generator().manual_seed(5), 5), False),
    ("spawn", (5,), True),  # spawning workers takes seconds: one set of them a run
])
def test_seeded_draws_in_dataloader_workers_differ_between_workers_and_epochs_and_repeat(context, generators,
                                                                                         persistent):
    """generator= a torch.Generator or an int seed: each worker draws from a stream of its own
    (under fork every worker used to copy one generator and draw the same pairs; under spawn
    the worker died), a new epoch draws anew, and the whole run repeats under torch.manual_seed."""
    for generator in generators:
        draws = _loader_draws(context, generator, persistent)
        workers = [draws[0:4], draws[4:8], draws[8:12], draws[12:16]]  # batches alternate between the 2 workers
        assert workers[0] != workers[1] and draws[:16] != draws[16:]
        assert _loader_draws(context, generator, persistent) == draws


def test_a_transform_with_a_generator_pickles_and_keeps_drawing_the_same():
    import pickle

    t = AWSAugment(Policy.uniform(), generator=torch.Generator().manual_seed(3))
    copy = pickle.loads(pickle.dumps(t))
    x = torch.zeros(8, 1, 4, 4, dtype=torch.uint8)
    assert torch.equal(t.forward_with_pairs(x)[1], copy.forward_with_pairs(x)[1])
    for bad, error in ((1.5, TypeError), (True, TypeError), ("0", TypeError), (-1, ValueError), (2**64, ValueError)):
        with pytest.raises(error, match="generator"):
            AWSAugment(Policy.uniform(), generator=bad)


# --------------------------------------------------------------------------- Cutout where RandomErasing goes
def test_cutout_works_on_normalized_float_images_like_random_erasing():
    x = v2.Normalize([0.5], [0.25])(torch.rand(1, 16, 16))
    out = Cutout(8, fill=0.0, generator=0)(x)
    assert out.dtype == torch.float32 and (out == 0).sum() >= 16 and torch.equal(out[out != 0], x[out != 0])
    batch = Cutout(8, fill=(-1.0, 2.0, 3.0), generator=0)(torch.rand(4, 3, 16, 16))
    for c, v in enumerate((-1.0, 2.0, 3.0)):  # one value per channel
        assert (batch[:, c] == v).flatten(1).sum(1).min() >= 16


def test_cutout_passes_boxes_and_masks_through_and_cuts_one_hole_per_video():
    img = tv_tensors.Image(torch.full((3, 16, 16), 200, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=(16, 16))
    mask = tv_tensors.Mask(torch.ones(16, 16, dtype=torch.uint8))
    out, out_boxes, out_mask = Cutout(8, generator=0)(img, boxes, mask)
    assert (out == 0).any() and torch.equal(out_boxes, boxes) and torch.equal(out_mask, mask)
    video = tv_tensors.Video(torch.full((2, 5, 1, 16, 16), 200, dtype=torch.uint8))  # 2 videos of 5 frames
    cut = Cutout(8, generator=0)(video)
    assert isinstance(cut, tv_tensors.Video) and cut.shape == video.shape
    for v in range(2):
        assert all(torch.equal(cut[v, 0], cut[v, f]) for f in range(5)) and (cut[v] == 0).any()


@pytest.mark.parametrize("length", [4, 5])
def test_cutout_hole_spans_half_the_length_either_side_as_documented(length):
    """An odd length cuts length - 1 pixels a side (the paper's code), as the docstring says."""
    x = torch.full((1, 32, 32), 200, dtype=torch.uint8)
    hole = (Cutout(length, generator=0)(x) == 0)
    t = Cutout(length, generator=0)
    t(x)  # same seed again: the same centre, which is inside the image far from its border
    side = 2 * (length // 2)
    assert hole.sum() <= side * side and hole.any()


@pytest.mark.parametrize(("args", "error", "pattern"), [
    ({"length": -3}, ValueError, "length"), ({"length": 2.5}, ValueError, "length"),
    ({"length": True}, ValueError, "length"),
    ({"fill": "black"}, TypeError, "fill"), ({"fill": float("inf")}, ValueError, "finite"),
])
def test_cutout_refuses_bad_arguments_when_built(args, error, pattern):
    with pytest.raises(error, match=pattern):
        Cutout(**args)


def test_cutout_fill_outside_uint8_is_refused_on_uint8_images_every_call():
    """Cutout(fill=-1) used to wrap to 255 on uint8 images; on float images -1 is a fill like any."""
    t = Cutout(4, fill=-1, generator=0)
    for _ in range(5):
        with pytest.raises(ValueError, match=r"outside \[0, 255\]"):
            t(torch.zeros(1, 8, 8, dtype=torch.uint8))
    assert (t(torch.zeros(1, 8, 8)) == -1).any()


# --------------------------------------------------------------------------- videos
def test_a_video_gets_one_pair_for_all_its_frames():
    frame = torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    video = tv_tensors.Video(frame.expand(3, 6, 3, 12, 12).clone())  # 3 videos of 6 identical frames
    t = AWSAugment(Policy.uniform(), generator=1)
    out, pairs = t.forward_with_pairs(video)
    assert isinstance(out, tv_tensors.Video) and out.shape == video.shape and pairs.shape == (3, 2)
    for v in range(3):
        assert all(torch.equal(out[v, 0], out[v, f]) for f in range(6))
    with pytest.raises(TypeError, match=r"tv_tensors\.Video"):
        t(torch.zeros(2, 2, 3, 8, 8, dtype=torch.uint8))  # a plain 5-D tensor: say what it is
