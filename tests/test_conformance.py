"""AWSAugment and Cutout held to torchvision's own checks for v2 transforms.

The checks are restated in this project's words from torchvision's test suite
(``test/test_transforms_v2.py`` and ``test/common_utils.py`` of pytorch/vision: ``check_transform``
and its sample check, the smoke tests of the AutoAugment family, ``TestErase``, the fill-argument
forms, ``test_classification_preset``); no code of it is copied. torchvision is BSD 3-Clause
licensed, Copyright (c) Soumith Chintala 2016, All rights reserved.

Every check runs on the torchvision transform each one stands in for (``v2.AutoAugment`` for
AWSAugment, ``v2.RandomErasing`` for Cutout) as a control in the same test: a check the control
fails would prove nothing about ours.

Checks of torchvision's suite that do not apply, and why:
* TorchScript (``torch.jit.script`` of the transform and of its kernels): AWSAugment and Cutout
  are Python transforms over a policy file; torchvision's own v2 transforms script only through
  their v1 counterparts.
* v1 compatibility (``_v1_transform_cls``, the same output as the v1 transform under one random
  state): there is no v1 AWSAugment or Cutout.
* float images for AWSAugment: its ops are PIL's uint8 arithmetic (bit-exact with the
  official release), so it takes uint8 and says so; ``v2.AutoAugment`` also takes float.
  Cutout takes float images like RandomErasing does.
* ``value="random"`` of RandomErasing (noise in the hole): Cutout fills one value, as the
  paper's Cutout does.
* RandomErasing warns that it passes boxes and masks through; Cutout passes them through
  without a warning (erasing pixels moves nothing). AWSAugment refuses them, as
  ``v2.AutoAugment`` does (its geometric ops would move the image under them); torchvision's own
  sample check drops them for the AutoAugment family, and so does this one.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from awsaa import AWSAugment, Cutout, Policy

UNIFORM = Policy.uniform()


def ours_and_control(kind: str) -> list[tuple[str, v2.Transform]]:
    if kind == "augment":
        return [("AWSAugment", AWSAugment(UNIFORM, fill=128)), ("v2.AutoAugment (control)", v2.AutoAugment())]
    return [("Cutout", Cutout(8)), ("v2.RandomErasing (control)", v2.RandomErasing(p=1.0))]


def make(kind: str, channels: int = 3, size: int = 32, dims: tuple[int, ...] = ()) -> object:
    x = torch.randint(0, 256, (*dims, channels, size, size), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(channels + size + len(dims)))
    if kind == "pil":
        arr = x.reshape(-1, channels, size, size)[0].permute(1, 2, 0).numpy()
        return PIL.Image.fromarray(arr[:, :, 0] if channels == 1 else arr)
    if kind == "video":
        return tv_tensors.Video(x.reshape(-1, channels, size, size).expand(3, channels, size, size).clone())
    return tv_tensors.Image(x) if kind == "image" else x


KINDS = ["tensor", "image", "pil", "video"]


# ---------------------------------------------------------------------------- check_transform
@pytest.mark.parametrize("family", ["augment", "erase"])
@pytest.mark.parametrize("kind", KINDS)
def test_pickles_and_returns_the_input_type(family, kind):
    """torchvision: a transform survives pickling, and its output is an instance of its input's type."""
    for name, t in ours_and_control(family):
        inpt = make(kind)
        if family == "erase" and kind == "pil":
            inpt = v2.PILToTensor()(inpt)  # RandomErasing takes no PIL image; neither needs to
        again = pickle.loads(pickle.dumps(t))
        for transform in (t, again):
            out = transform(inpt)
            assert isinstance(out, type(inpt)), name
            if isinstance(inpt, torch.Tensor):
                assert out.shape == inpt.shape and out.dtype == inpt.dtype, name


@pytest.mark.parametrize("family", ["augment", "erase"])
@pytest.mark.parametrize("container", [dict, list, tuple])
def test_a_sample_of_every_kind_keeps_its_structure_and_passes_the_rest_through(family, container):
    """torchvision's sample check: an image among a video, a PIL image, plain values, a label
    tensor and arrays; the structure comes back the same, the image keeps its type, and every
    entry the transform does not transform comes back as the very same object."""
    passengers = {"int": 0, "float": 0.0, "bool": True, "none": None, "str": "str", "path": Path("."),
                  "object": object(), "tensor": torch.empty(5), "array": np.empty(5)}
    for name, t in ours_and_control(family):
        image = make("image")
        sample = {"image": image, **passengers}
        if family == "erase":  # boxes and masks too: passed through (RandomErasing warns that it does)
            sample["boxes"] = tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=(32, 32))
            sample["mask"] = tv_tensors.Mask(torch.ones(32, 32, dtype=torch.uint8))
        inpt = sample if container is dict else container(sample.values())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("warnings.warn", lambda *a, **k: None)  # RandomErasing's pass-through warning
            out = t(inpt)
        assert type(out) is type(inpt), name
        pairs = zip(out.values() if container is dict else out, sample.values(), strict=True)
        for (got, given), key in zip(pairs, sample, strict=True):
            if key == "image":
                assert isinstance(got, tv_tensors.Image) and got.shape == given.shape, name
            else:
                assert got is given, f"{name}: {key} was not passed through"


# ---------------------------------------------------------------------------- smoke (AutoAugment family)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("kind", "dims"), [("tensor", ()), ("tensor", (4,)), ("image", ()), ("image", (4,)),
                                            ("pil", ()), ("video", ())])  # a PIL image has no batch dimension
def test_smoke_grey_and_rgb_with_leading_dims(channels, dims, kind):
    """torchvision's smoke test of the AutoAugment family: grey and RGB uint8, with and without a
    leading batch dimension, as a pure tensor, an Image, a PIL image and a 3-frame video, over
    many seeds so that every op comes up."""
    for name, t in ours_and_control("augment"):
        for seed in range(40):
            torch.manual_seed(seed)
            inpt = make(kind, channels, dims=dims)
            out = t(inpt)
            assert isinstance(out, type(inpt)), name


def test_refuses_what_the_autoaugment_family_refuses():
    """v2.AutoAugment refuses boxes and masks beside an image; so does AWSAugment."""
    boxes = tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=(32, 32))
    for _, t in ours_and_control("augment"):
        with pytest.raises(TypeError, match="BoundingBoxes"):
            t(make("image"), boxes)


# ---------------------------------------------------------------------------- TestErase
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("value", [0, 0.5, (0, 1, 0), [0.2, 0.0, 1.0]])
def test_erasing_fills_the_hole_with_the_value_in_the_image_dtype(dtype, value):
    """torchvision's erase correctness: the erased area holds the value (one, or one per
    channel) in the image's dtype; everything else is unchanged. (On uint8, RandomErasing's cast
    truncates 0.5 to 0 and Cutout rounds it to 1, as AWSAugment's fill does.)"""
    x = torch.full((3, 32, 32), 7, dtype=dtype)
    values = list(value) if isinstance(value, (tuple, list)) else [value] * 3
    ours = torch.tensor([math.floor(v + 0.5) for v in values] if dtype == torch.uint8 else values,
                        dtype=torch.float32).to(dtype).tolist()
    control = torch.tensor(values, dtype=torch.float32).to(dtype).tolist()
    for name, t, expect in (("Cutout", Cutout(8, fill=value), ours),
                            ("v2.RandomErasing (control)", v2.RandomErasing(1, value=value), control)):
        out = t(x)
        hole = (out != x).any(0)
        assert hole.any(), f"{name}: no hole"
        for c in range(3):
            assert out[c][hole].unique().tolist() in ([expect[c]], []), name  # [] : that channel equals 7 there
        assert torch.equal(out[:, ~hole], x[:, ~hole]), name


def test_a_value_of_the_wrong_length_is_refused():
    """torchvision: a 4-value fill on a 3-channel image is an error naming the length rule."""
    x = torch.zeros(3, 16, 16)
    with pytest.raises(ValueError, match="single value"):
        v2.RandomErasing(1, value=[1, 2, 3, 4])(x)
    with pytest.raises(ValueError, match="4 values for images of 3 channels"):
        Cutout(4, fill=[1, 2, 3, 4])(x)


# ---------------------------------------------------------------------------- fill forms
TORCHVISION_FILLS = [None, 1, 0.5, [1], [0.2], (0,), (0.7,), [1, 0, 1], [0.1, 0.2, 0.3], (0, 1, 0),
                     (0.9, 0.234, 0.314)]


@pytest.mark.parametrize("fill", TORCHVISION_FILLS, ids=str)
def test_every_fill_form_of_torchvision_s_suite_is_taken(fill):
    """The fill forms torchvision's suite runs every geometric transform with (None, an int, a
    float, one-element and three-element lists and tuples of ints and floats), and the same
    as a dict by input type: taken by AWSAugment as by v2.AutoAugment, on a 3-channel image."""
    x = make("image")
    for form in (fill, {tv_tensors.Image: fill, "others": 0}):
        for name, t in (("AWSAugment", AWSAugment(UNIFORM, fill=form, generator=0)),
                        ("v2.AutoAugment (control)", v2.AutoAugment(fill=form))):
            for _ in range(10):
                assert t(x).shape == x.shape, name


@pytest.mark.parametrize("fill", ["abc", b"x", object()])
def test_a_fill_of_no_fill_form_is_a_type_error(fill):
    """torchvision: 'Got inappropriate fill arg' (a TypeError) for a fill of no accepted form."""
    with pytest.raises(TypeError):
        v2.RandomAffine(0, fill=fill)
    with pytest.raises(TypeError):
        AWSAugment(UNIFORM, fill=fill)


@pytest.mark.parametrize("fill", [*TORCHVISION_FILLS, {tv_tensors.Image: (1, 2, 3), "others": 0.5},
                                  {tv_tensors.Mask: None}], ids=str)
def test_our_fill_table_reads_each_form_as_torchvision_s_own_helper_does(fill):
    """awsaa.transforms.fill_table reads a fill without torchvision's private helper; this
    holds it to that helper (``_setup_fill_arg``, which every v2 transform calls): the same
    keys, the same values (None as 0, one value or one per channel, as floats)."""
    from torchvision.transforms.v2._utils import _setup_fill_arg

    from awsaa.transforms import fill_table

    theirs = _setup_fill_arg(dict(fill) if isinstance(fill, dict) else fill)
    ours = fill_table(fill, None, None)
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        expected = (0.0,) if value is None else (float(value),) if isinstance(value, (int, float)) else tuple(value)
        assert ours[key] == expected


# ---------------------------------------------------------------------------- the classification preset
@pytest.mark.parametrize("image_kind", ["pil", "tensor", "image"])
@pytest.mark.parametrize("label", [1, torch.tensor([1])], ids=["int", "tensor"])
@pytest.mark.parametrize("as_dict", [True, False], ids=["dict", "tuple"])
def test_the_classification_preset(image_kind, label, as_dict):
    """torchvision's preset test with AWSAugment where the AutoAugment family goes and Cutout
    where RandomErasing goes: the sample keeps its type and keys, the image is 224 x 224 float,
    the label comes back unchanged. The control runs torchvision's own pipeline."""
    for ours in (True, False):
        pipeline = v2.Compose([
            v2.RandomResizedCrop((224, 224), antialias=True),
            v2.RandomHorizontalFlip(p=1),
            AWSAugment(UNIFORM) if ours else v2.AutoAugment(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0, 0, 0], std=[1, 1, 1]),
            Cutout(16) if ours else v2.RandomErasing(p=1),
        ])
        image = make(image_kind, size=250)
        sample = {"image": image, "label": label} if as_dict else (image, label)
        out = pipeline(sample)
        assert type(out) is type(sample)
        out_image, out_label = (out["image"], out["label"]) if as_dict else out
        if as_dict:
            assert out.keys() == sample.keys()
        assert out_image.shape[-2:] == (224, 224) and out_image.dtype == torch.float32
        assert out_label is label
