"""ImageNet ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016)
built on torchvision's ``ResNet`` and ``Bottleneck`` (stride on the 3x3 conv, "v1.5"),
with optional stochastic depth (Huang et al., ECCV 2016) on each bottleneck's residual
branch. ResNet-200 is this same (post-activation) bottleneck with stages [3, 24, 36, 3]:
64.67M parameters, the published 64.7M of the pre-activation ResNet-200 (He et al.,
"Identity Mappings in Deep Residual Networks", ECCV 2016) up to a few thousand BatchNorm
parameters, which is where the two orderings differ."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import StochasticDepth

from awsaa.models.registry import init_weights, linear_drop_rates, register


class DropPathBottleneck(Bottleneck):
    """torchvision's ``Bottleneck`` with stochastic depth on the residual branch (identity
    until :func:`_resnet` sets a drop probability)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop_path: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.drop_path(out) + identity)


def _resnet(layers: list[int], num_classes: int, in_channels: int, drop_path: float) -> ResNet:
    net = ResNet(DropPathBottleneck, layers, num_classes=num_classes)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    init_weights(net)  # torchvision's init, plus a zero head bias
    blocks = [m for m in net.modules() if isinstance(m, DropPathBottleneck)]
    for block, p in zip(blocks, linear_drop_rates(drop_path, len(blocks)), strict=True):
        if p:
            block.drop_path = StochasticDepth(p, "row")
    return net


@register("resnet50")
def resnet50(num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0) -> ResNet:
    """ResNet-50 (25.6M parameters with the 1000-class head)."""
    return _resnet([3, 4, 6, 3], num_classes, in_channels, drop_path)


@register("resnet200")
def resnet200(num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0) -> ResNet:
    """ResNet-200 (64.7M parameters with the 1000-class head)."""
    return _resnet([3, 24, 36, 3], num_classes, in_channels, drop_path)
