"""torchvision v2 transforms over a :class:`~awsaa.policy.Policy`.

``AWSAugment(policy)`` draws a sub-policy (op pair) and the ops' random signs and
applies both ops. It takes what torchvision's v2 transforms take for images:

* a PIL image (``L`` or ``RGB``): applied with the PIL reference ops; any other mode is
  refused on every call (torchvision's v2 AutoAugment fails on some ops only, so at random);
* a uint8 tensor ``(C, H, W)`` or ``tv_tensors.Image``: one pair;
* a uint8 batch ``(N, C, H, W)``: a pair drawn **per sample**, applied with the batched
  tensor ops on the batch's device;
* a ``tv_tensors.Video`` ``(..., T, C, H, W)``: one pair per video, the same for all its
  frames (as ``v2.AutoAugment`` draws once for a video). A plain tensor of more than 4
  dimensions is refused: wrap it as ``tv_tensors.Video`` to say what its dimensions are.

Bounding boxes, masks and keypoints are refused by ``AWSAugment`` (its geometric ops would
move the image under them; ``v2.AutoAugment`` refuses them too) and passed through unchanged
by ``Cutout`` (erasing pixels moves nothing; ``v2.RandomErasing`` passes them through).

**fill** takes the forms torchvision's transforms take, checked and converted by torchvision's
own helpers: a number, a sequence of one value per channel, ``None`` (0), or a dict from input
type to one of those with ``"others"`` for the rest (``{tv_tensors.Image: 128, "others": 0}``).
``AWSAugment`` works on uint8 images, so its fill values must lie in [0, 255]: anything else
is refused when the transform is built. A fractional value is rounded to the nearest integer
on both paths (127.5 -> 128). A fill with one value per channel must match the image's
channels: checked on every call before anything is drawn.

**Random draws** come from torch's global generator by default, as torchvision's do (a
``DataLoader`` seeds it in each worker). ``generator=`` (a ``torch.Generator`` or an int
seed) makes the draws reproducible. In a ``DataLoader`` worker the transform then draws from
a stream of its own, derived from that seed and the seed the ``DataLoader`` gives the worker:
workers never repeat each other's draws, a new epoch's workers do not repeat the last
epoch's, and a run under ``torch.manual_seed`` repeats exactly. This holds under both the
fork and the spawn start methods (the transform pickles).

It composes with other v2 transforms (put ``AWSAugment`` before ``ToDtype``/``Normalize``:
it works on uint8; ``Cutout`` goes anywhere, like ``RandomErasing``).
:meth:`AWSAugment.forward_with_pairs` also returns the pairs it drew, which is what the search
counts.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import PIL.Image
import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten
from torch.utils.data import get_worker_info
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2.functional import is_pure_tensor

from awsaa.augment import pil_ops, tensor_ops
from awsaa.augment.space import channel_fill
from awsaa.errors import GENERATOR_SEED_END, check_int
from awsaa.policy import Policy, as_policy

_ANNOTATIONS = (tv_tensors.BoundingBoxes, tv_tensors.Mask, tv_tensors.KeyPoints)

PIL_MODES = ("L", "RGB")  # the modes torchvision's own v2 AutoAugment handles with every op

_FillValue = int | float | Sequence[int | float] | None
FillArg = _FillValue | dict[type | str, _FillValue]
FillTable = dict[type | str, tuple[float, ...]]


def fill_table(fill: FillArg, low: float | None = 0.0, high: float | None = 255.0) -> FillTable:
    """torchvision's fill forms as ``{input type or "others": values}``, as its v2 transforms
    read them (a number, a list or tuple of numbers, None, or a dict of those by input type or
    ``"others"``; ``tests/test_conformance.py`` holds this to torchvision's own private helper),
    then every value finite and within [low, high] (``None`` bounds: no bound). ``None``
    becomes (0,)."""
    table = dict(fill) if isinstance(fill, dict) else {"others": fill}
    out: FillTable = {}
    for key, value in table.items():
        if value is not None and not isinstance(value, (numbers.Number, tuple, list)):
            raise TypeError(f"fill must be a number, a sequence of numbers, None or a dict, got {value!r}")
        values = (0.0,) if value is None else (float(value),) if isinstance(value, numbers.Real) else tuple(
            float(v) for v in value)
        if not values:
            raise ValueError("fill is an empty sequence: give one value, or one per channel")
        for v in values:
            if not math.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
                where = f" for {getattr(key, '__name__', key)} inputs" if isinstance(fill, dict) else ""
                bounds = f" in [{low:g}, {high:g}] (the ops work on uint8 images)" if low is not None else ""
                raise ValueError(f"fill{where} must be finite numbers{bounds}, got {v:g}")
        out[key] = values
    return out


def _fill_for(table: Mapping[type | str, tuple[Any, ...]], inpt: Any) -> tuple[Any, ...]:
    """The entry for ``inpt``'s type (or a base class of it), else ``"others"``, else 0 (as
    torchvision's transforms end up filling)."""
    for t in type(inpt).__mro__:
        if t in table:
            return table[t]
    return table.get("others", (0.0,))


def _uint8(values: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(math.floor(v + 0.5) for v in values)


def _channels(inpt: Any) -> int:
    return len(inpt.getbands()) if isinstance(inpt, PIL.Image.Image) else int(inpt.shape[-3])


def _check_fill(values: tuple[float, ...], inpt: Any) -> None:
    channel_fill(values, _channels(inpt))  # one value, or one per channel


def _count(inpt: Any, name: str, uint8_only: bool) -> int:
    """How many draws a call takes: 1 for an image, N for a batch (N, C, H, W), one per video."""
    if isinstance(inpt, PIL.Image.Image):
        if inpt.mode not in PIL_MODES:
            raise TypeError(f"expected a PIL image in mode L or RGB, got mode {inpt.mode}; convert it first, "
                            f"e.g. image.convert('RGB')")
        return 1
    if uint8_only and inpt.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {inpt.dtype}; apply this before ToDtype/Normalize")
    if isinstance(inpt, tv_tensors.Video):
        if inpt.dim() < 4:
            raise TypeError(f"expected a video (..., T, C, H, W), got shape {tuple(inpt.shape)}")
        return math.prod(inpt.shape[:-4])
    if inpt.dim() == 3:
        return 1
    if inpt.dim() == 4:
        return inpt.shape[0]
    raise TypeError(f"{name} expected an image (C, H, W) or a batch (N, C, H, W), got shape {tuple(inpt.shape)}; "
                    f"wrap videos as tv_tensors.Video")


def _frames(inpt: Tensor) -> tuple[Tensor, int]:
    """``inpt`` as a plain (N, C, H, W) batch, and how many frames each draw covers (1, or T
    for videos)."""
    x = inpt.as_subclass(Tensor)
    if isinstance(inpt, tv_tensors.Video):
        return x.reshape(-1, *x.shape[-3:]), x.shape[-4]
    return (x.unsqueeze(0) if x.dim() == 3 else x), 1


def _like(out: Tensor, inpt: Tensor) -> Tensor:
    out = out.reshape(inpt.shape)
    return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)) else out


class _PerSampleTransform(Transform):
    """Base: one image input (PIL, CHW, NCHW or a video); parameters drawn per sample."""

    _transformed_types = (PIL.Image.Image, tv_tensors.Image, tv_tensors.Video, is_pure_tensor)
    _uint8_only = True  # Cutout works on float images too
    _passes_annotations = False  # boxes, masks, keypoints: refused, or passed through unchanged

    def __init__(self, generator: torch.Generator | int | None = None) -> None:
        super().__init__()
        if generator is None or isinstance(generator, torch.Generator):
            self._seed: int | None = None if generator is None else generator.initial_seed()
        else:  # an int seed
            self._seed = check_int(generator, "generator (a torch.Generator, an int seed or None)", 0,
                                   GENERATOR_SEED_END)
            generator = torch.Generator().manual_seed(self._seed)
        self.generator = generator
        self._stream: tuple[int, int] | None = None  # (pid, worker id) whose stream `generator` is

    def rng(self) -> torch.Generator | None:
        """The generator to draw from now: None (torch's global one), the given one, or in a
        DataLoader worker a stream of the worker's own (see the module's docstring)."""
        if self.generator is None:
            return None
        info = get_worker_info()
        if info is not None and self._stream != (os.getpid(), info.id):
            self._stream = (os.getpid(), info.id)
            digest = hashlib.blake2b(f"{self._seed}/{info.seed}".encode(), digest_size=8).digest()
            self.generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        return self.generator

    def __getstate__(self) -> dict[str, Any]:
        # a generator travels as its state's bytes: pickled as itself, its state tensor goes
        # through shared memory in a DataLoader spawning workers, which fails
        state = super().__getstate__().copy()
        g = state.get("generator")
        if isinstance(g, torch.Generator):
            state["generator"] = ("torch.Generator", bytes(g.get_state().numpy().tobytes()))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        g = state.get("generator")
        if isinstance(g, tuple) and g and g[0] == "torch.Generator":
            gen = torch.Generator()
            gen.set_state(torch.frombuffer(bytearray(g[1]), dtype=torch.uint8))
            state = {**state, "generator": gen}
        super().__setstate__(state)

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        for x in flat_inputs:
            if isinstance(x, _ANNOTATIONS) and not self._passes_annotations:
                raise TypeError(f"{type(self).__name__} does not support {type(x).__name__} inputs")

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        images = [x for x in flat_inputs if not isinstance(x, _ANNOTATIONS)]
        if len(images) != 1:
            raise TypeError(f"{type(self).__name__} expects one image, batch or video per call, got {len(images)}")
        inpt = images[0]
        n = _count(inpt, type(self).__name__, self._uint8_only)
        h, w = (inpt.height, inpt.width) if isinstance(inpt, PIL.Image.Image) else inpt.shape[-2:]
        if h == 0 or w == 0:
            raise ValueError(f"{type(self).__name__} got an empty image ({h}x{w} pixels)")
        self.check(inpt)
        return self.draw(n, inpt)

    def check(self, inpt: Any) -> None:
        """Refuse what this input cannot take, before anything is drawn."""

    def draw(self, n: int, inpt: Any) -> dict[str, Any]:
        raise NotImplementedError


class AWSAugment(_PerSampleTransform):
    """Apply a sub-policy drawn from ``policy`` (a :class:`Policy` or a policy file).

    Args:
        policy: the distribution over op pairs.
        fill: the colour of the area geometric ops uncover, in any form torchvision's
            transforms take (see the module's docstring), values in [0, 255]: 128 for
            CIFAR, 0 for black-background data such as Fashion-MNIST.
        generator: a ``torch.Generator`` or an int seed for reproducible draws, safe in
            ``DataLoader`` workers; None: torch's global generator, as torchvision's.
    """

    def __init__(self, policy: Policy | str | os.PathLike, fill: FillArg = 128,
                 generator: torch.Generator | int | None = None) -> None:
        super().__init__(generator)
        self.policy = as_policy(policy)
        self.fill: FillArg = fill
        self._fill: dict[type | str, tuple[int, ...]] = {k: _uint8(v) for k, v in fill_table(fill).items()}

    def check(self, inpt: Any) -> None:
        _check_fill(_fill_for(self._fill, inpt), inpt)

    def draw(self, n: int, inpt: Any) -> dict[str, Any]:
        g = self.rng()
        return {"pairs": self.policy.sample(n, g), "signs": tensor_ops.draw_signs(n, 2, g)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        pairs, signs = params["pairs"], params["signs"]
        fill = _fill_for(self._fill, inpt)
        if isinstance(inpt, PIL.Image.Image):
            ops = self.policy.space.ops
            i, j = pairs[0].tolist()
            return pil_ops.apply_pair(inpt, (ops[i], ops[j]), tuple(signs[0].tolist()), fill)
        x, frames = _frames(inpt)
        if frames > 1:  # one pair per video, for all its frames
            pairs, signs = pairs.repeat_interleave(frames, 0), signs.repeat_interleave(frames, 0)
        return _like(tensor_ops.apply_pairs(x, pairs.to(x.device), self.policy.space, signs, fill), inpt)

    def forward_with_pairs(self, inpt: Any) -> tuple[Any, Tensor]:
        """Like ``forward`` on one image, batch or video; also returns the (N, 2) pairs drawn."""
        flat, _ = tree_flatten(inpt)
        if len(flat) != 1:
            raise TypeError("forward_with_pairs takes one image, batch or video")
        self.check_inputs(flat)
        params = self.make_params(flat)
        return self.transform(inpt, params), params["pairs"]

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}, fill={self.fill!r}"


class Cutout(_PerSampleTransform):
    """Cutout (DeVries & Taylor, 2017): one square hole of ``fill`` per image, centred uniformly
    over the image and clipped at its border. Usable where ``v2.RandomErasing`` is: on uint8
    or float images (after ``Normalize`` too: ``fill`` is then in the normalized scale, and 0
    is the mean), PIL images, batches (a hole per sample) and videos (one hole per video, the
    same in every frame); bounding boxes, masks and keypoints pass through unchanged.

    Args:
        length: the hole's side. As in the paper's code, the hole spans ``length // 2`` pixels
            either side of its centre, so an odd ``length`` cuts ``length - 1`` pixels a side;
            0 cuts nothing.
        fill: one value or one per channel, in any form torchvision's transforms take; on
            uint8 images the values must lie in [0, 255] (checked on every call, before the
            draw).
        generator: as for :class:`AWSAugment`.
    """

    _uint8_only = False
    _passes_annotations = True

    def __init__(self, length: int = 16, fill: FillArg = 0, generator: torch.Generator | int | None = None) -> None:
        super().__init__(generator)
        if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 0:
            raise ValueError(f"length must be a whole number of pixels >= 0, got {length!r}")
        self.length: int = int(length)
        self.fill: FillArg = fill
        self._fill: FillTable = fill_table(fill, None, None)

    def check(self, inpt: Any) -> None:
        fill = _fill_for(self._fill, inpt)
        _check_fill(fill, inpt)
        if (isinstance(inpt, PIL.Image.Image) or inpt.dtype == torch.uint8) and not all(0 <= v <= 255 for v in fill):
            raise ValueError(f"fill {fill} is outside [0, 255], the range of uint8 images")

    def draw(self, n: int, inpt: Any) -> dict[str, Any]:
        h, w = (inpt.height, inpt.width) if isinstance(inpt, PIL.Image.Image) else inpt.shape[-2:]
        g = self.rng()
        return {"centers": torch.stack([torch.randint(0, h, (n,), generator=g),
                                        torch.randint(0, w, (n,), generator=g)], dim=1)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        centers, fill = params["centers"], _fill_for(self._fill, inpt)
        if isinstance(inpt, PIL.Image.Image):
            return pil_ops.cutout(inpt, self.length, tuple(centers[0].tolist()), _uint8(fill))
        x, frames = _frames(inpt)
        n, _, h, w = x.shape
        hole = tensor_ops.cutout_mask(n // frames, h, w, self.length, centers.to(x.device))
        hole = hole.repeat_interleave(frames, 0).unsqueeze(1)  # (N, 1, H, W)
        colour = torch.tensor(_uint8(fill) if x.dtype == torch.uint8 else fill, device=x.device).to(x.dtype)
        return _like(torch.where(hole, colour.view(1, -1, 1, 1), x), inpt)

    def extra_repr(self) -> str:
        return f"length={self.length}, fill={self.fill!r}"
