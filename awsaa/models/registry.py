"""The model registry, in the style of timm: ``create("wrn28_10", num_classes=10)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from awsaa.errors import AWSAAError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a registered network. Unsupported options (e.g. ``drop_path`` on a network
    without residual drops) are a one-line :class:`~awsaa.errors.AWSAAError`."""
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise AWSAAError(f"unknown model {name!r}; choose from {', '.join(list_models())}") from None
    accepted = inspect.signature(fn).parameters
    for key in kwargs:
        if key not in accepted:
            raise AWSAAError(f"model {name!r} does not support {key!r}")
    return fn(num_classes=num_classes, in_channels=in_channels, **kwargs)


def init_weights(model: nn.Module) -> None:
    """He initialization for convolutions, unit BatchNorm, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
