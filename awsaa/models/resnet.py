"""ImageNet ResNets (He et al., 2016) on torchvision's ``ResNet`` and ``Bottleneck``, with
optional stochastic depth (Huang et al., 2016) on each bottleneck's residual branch."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import StochasticDepth

from awsaa.models.registry import register


class _DropBottleneck(Bottleneck):
    drop_path: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.drop_path(out) + identity)


def _resnet(layers: list[int], num_classes: int, in_channels: int, drop_path: float) -> ResNet:
    net = ResNet(_DropBottleneck, layers, num_classes=num_classes)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    blocks = [m for m in net.modules() if isinstance(m, _DropBottleneck)]
    for i, block in enumerate(blocks):
        p = drop_path * i / max(len(blocks) - 1, 1)
        block.drop_path = StochasticDepth(p, "row") if p else nn.Identity()
    return net


@register("resnet50")
def resnet50(num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0) -> ResNet:
    return _resnet([3, 4, 6, 3], num_classes, in_channels, drop_path)


@register("resnet200")
def resnet200(num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0) -> ResNet:
    return _resnet([3, 24, 36, 3], num_classes, in_channels, drop_path)
