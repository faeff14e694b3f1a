"""torchvision v2 transforms over a :class:`~awsaa.policy.Policy`.

``AWSAugment(policy)`` draws a sub-policy (op pair) and the ops' random signs and
applies both ops. It takes what torchvision's v2 transforms take for images:

* a PIL image (``L`` or ``RGB``): applied with the PIL reference ops; any other mode is
  refused on every call (torchvision's v2 AutoAugment fails on some ops only, so at random);
* a uint8 tensor ``(C, H, W)`` or ``tv_tensors.Image``: one pair;
* a uint8 batch ``(N, C, H, W)``: a pair drawn **per sample**, applied with the batched
  tensor ops on the batch's device.

It composes with other v2 transforms (put it before ``ToDtype``/``Normalize``: it works
on uint8). :meth:`AWSAugment.forward_with_pairs` also returns the pairs it drew, which
is what the search counts.
"""

from __future__ import annotations

import os
from typing import Any

import PIL.Image
import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2._utils import is_pure_tensor

from awsaa.augment import pil_ops, tensor_ops
from awsaa.policy import Policy, as_policy

_UNSUPPORTED = (tv_tensors.BoundingBoxes, tv_tensors.Mask, tv_tensors.KeyPoints, tv_tensors.Video)


PIL_MODES = ("L", "RGB")  # the modes torchvision's own v2 AutoAugment handles with every op


def _batch_size(inpt: Any) -> int:
    if isinstance(inpt, PIL.Image.Image):
        if inpt.mode not in PIL_MODES:
            raise TypeError(f"expected a PIL image in mode L or RGB, got mode {inpt.mode}; convert it first, "
                            f"e.g. image.convert('RGB')")
        return 1
    if inpt.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {inpt.dtype}; apply this before ToDtype/Normalize")
    if inpt.dim() == 3:
        return 1
    if inpt.dim() == 4:
        return inpt.shape[0]
    raise TypeError(f"expected an image (C, H, W) or a batch (N, C, H, W), got shape {tuple(inpt.shape)}")


def _as_batch(inpt: Tensor) -> Tensor:
    return inpt.as_subclass(Tensor).unsqueeze(0) if inpt.dim() == 3 else inpt.as_subclass(Tensor)


def _like(out: Tensor, inpt: Tensor) -> Tensor:
    out = out.squeeze(0) if inpt.dim() == 3 else out
    return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out


class _PerSampleTransform(Transform):
    """Base: one image input (PIL, CHW or NCHW); parameters drawn per sample."""

    _transformed_types = (PIL.Image.Image, tv_tensors.Image, is_pure_tensor)

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        for x in flat_inputs:
            if isinstance(x, _UNSUPPORTED):
                raise TypeError(f"{type(self).__name__} does not support {type(x).__name__} inputs")

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        sizes = {_batch_size(x) for x in flat_inputs}
        if len(sizes) != 1:
            raise TypeError(f"{type(self).__name__} expects one image or batch per call")
        return self.draw(sizes.pop(), flat_inputs[0])

    def draw(self, n: int, inpt: Any) -> dict[str, Any]:
        raise NotImplementedError


class AWSAugment(_PerSampleTransform):
    """Apply a sub-policy drawn from ``policy`` (a :class:`Policy` or a policy file).

    Args:
        policy: the distribution over op pairs.
        fill: pixel value for the area geometric ops uncover (128 for CIFAR, 0 for
            black-background data such as Fashion-MNIST).
        generator: a ``torch.Generator`` for reproducible draws.
    """

    def __init__(self, policy: Policy | str | os.PathLike, fill: int = 128,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.policy = as_policy(policy)
        self.fill = int(fill)

    def draw(self, n: int, inpt: Any) -> dict[str, Any]:
        return {"pairs": self.policy.sample(n, self.generator),
                "signs": tensor_ops.draw_signs(n, 2, self.generator)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        pairs, signs = params["pairs"], params["signs"]
        if isinstance(inpt, PIL.Image.Image):
            ops = self.policy.space.ops
            i, j = pairs[0].tolist()
            return pil_ops.apply_pair(inpt, (ops[i], ops[j]), tuple(signs[0].tolist()), self.fill)
        out = tensor_ops.apply_pairs(_as_batch(inpt), pairs.to(inpt.device), self.policy.space,
                                     signs, self.fill)
        return _like(out, inpt)

    def forward_with_pairs(self, inpt: Any) -> tuple[Any, Tensor]:
        """Like ``forward`` on one image or batch; also returns the (N, 2) pairs drawn."""
        flat, _ = tree_flatten(inpt)
        if len(flat) != 1:
            raise TypeError("forward_with_pairs takes one image or batch")
        self.check_inputs(flat)
        params = self.make_params(flat)
        return self.transform(inpt, params), params["pairs"]

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}, fill={self.fill}"


class Cutout(_PerSampleTransform):
    """Cutout (DeVries & Taylor, 2017): one ``length`` x ``length`` square of ``fill`` per
    image, centred uniformly over the image and clipped at its border."""

    def __init__(self, length: int = 16, fill: int = 0, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.length = int(length)
        self.fill = int(fill)

    def draw(self, n: int, inpt: Any) -> dict[str, Any]:
        if isinstance(inpt, PIL.Image.Image):
            h, w = inpt.height, inpt.width
        else:
            h, w = inpt.shape[-2:]
        return {"centers": torch.stack([torch.randint(0, h, (n,), generator=self.generator),
                                        torch.randint(0, w, (n,), generator=self.generator)], dim=1)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        centers = params["centers"]
        if isinstance(inpt, PIL.Image.Image):
            return pil_ops.cutout(inpt, self.length, tuple(centers[0].tolist()), self.fill)
        return _like(tensor_ops.cutout(_as_batch(inpt), self.length, centers, self.fill), inpt)

    def extra_repr(self) -> str:
        return f"length={self.length}, fill={self.fill}"
