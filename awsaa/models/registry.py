"""The model registry, in the style of timm: ``create("wrn28_10", num_classes=10)``.

Model files register a builder with :func:`register`; a builder takes ``num_classes``,
``in_channels`` and the options its family supports as keyword arguments (``drop_path``
for the networks with stochastic depth). :func:`create` turns an unknown name or an
unsupported option into a one-line :class:`~awsaa.errors.AWSAAError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from awsaa.errors import AWSAAError, check_int

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register a model builder under ``name`` (a name may be registered once)."""

    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def _options(fn: Callable[..., nn.Module]) -> set[str]:
    return set(inspect.signature(fn).parameters) - {"num_classes", "in_channels"}


def create(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build the registered network ``name`` with a ``num_classes``-way head for
    ``in_channels``-channel images. ``drop_path=0`` is accepted (and ignored) by every
    network; any other option the network does not take is an :class:`AWSAAError`."""
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise AWSAAError(f"unknown model {name!r}; choose from {', '.join(list_models())}") from None
    return build(name, fn, num_classes, in_channels, **kwargs)


def build(name: str, fn: Callable[..., nn.Module], num_classes: int = 10, in_channels: int = 3,
          **kwargs: Any) -> nn.Module:
    """:func:`create` for a builder ``fn`` that is not in the registry (an architecture file's
    network), with the same checks of the counts and options."""
    check_int(num_classes, "num_classes", 1)
    check_int(in_channels, "in_channels", 1)
    accepted = _options(fn)
    if "drop_path" in kwargs and "drop_path" not in accepted and not kwargs["drop_path"]:
        kwargs.pop("drop_path")  # no stochastic depth asked for: nothing to refuse
    for key in kwargs:
        if key not in accepted:
            if key == "drop_path":
                able = [n for n in list_models() if "drop_path" in _options(_REGISTRY[n])]
                raise AWSAAError(f"model {name!r} does not support 'drop_path' (stochastic depth); "
                                 f"models that do: {', '.join(able)}")
            supported = ", ".join(sorted(accepted)) or "none"
            raise AWSAAError(f"model {name!r} does not support {key!r}; its options: {supported}")
    drop_path = kwargs.get("drop_path", 0.0)
    if not 0.0 <= drop_path < 1.0:
        raise AWSAAError(f"drop_path must be in [0, 1), got {drop_path}")
    return fn(num_classes=num_classes, in_channels=in_channels, **kwargs)


def linear_drop_rates(drop_path: float, num_blocks: int) -> list[float]:
    """Stochastic-depth drop probability per block, rising linearly from 0 at the first
    block to ``drop_path`` at the last (Huang et al., 2016, "linear decay" rule)."""
    if num_blocks == 1:
        return [drop_path]
    return [drop_path * i / (num_blocks - 1) for i in range(num_blocks)]


def init_weights(model: nn.Module) -> None:
    """He initialization (normal, fan_out) for convolutions, BatchNorm weight 1 and bias 0,
    zero biases elsewhere (linear weights keep PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
