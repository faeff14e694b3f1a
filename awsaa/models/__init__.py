"""The model zoo, a timm-style registry: ``awsaa.models.create(name, num_classes, in_channels)``.

CIFAR-style networks (32x32, and 28x28 Fashion-MNIST with ``in_channels=1``): ``wrn10_1``,
``wrn16_2``, ``wrn40_2``, ``wrn28_10``, ``shakeshake26_2x{32,96,112}d``,
``pyramidnet272_a200``; ImageNet: ``resnet50``, ``resnet200``. The WRNs and ResNets take
``drop_path`` (stochastic depth). A name ending in ``.json`` is an architecture file
(:mod:`awsaa.arch`): that path of the choice-block space, as a :class:`~awsaa.models.choice.ChoiceNet`.
"""

import functools
from typing import Any

from torch import nn

from awsaa.arch import Arch, is_arch_file
from awsaa.models import pyramidnet, resnet, shakeshake, wrn  # noqa: F401  (registers the models)
from awsaa.models.choice import ChoiceNet, SuperNet
from awsaa.models.registry import build, list_models, register
from awsaa.models.registry import create as _create_registered


def create(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build the registered network ``name``, or the architecture in the file ``name`` (``.json``),
    with a ``num_classes``-way head for ``in_channels``-channel images (see
    :func:`awsaa.models.registry.create` for the options)."""
    if is_arch_file(name):
        return build(name, functools.partial(ChoiceNet, Arch.load(name)), num_classes, in_channels, **kwargs)
    return _create_registered(name, num_classes, in_channels, **kwargs)


__all__ = ["ChoiceNet", "SuperNet", "create", "list_models", "register"]
