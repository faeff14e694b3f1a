"""Wide Residual Networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016),
the CIFAR variant: a 3x3 stem with 16 channels, then three groups of ``n`` pre-activation
basic blocks of width 16k, 32k and 64k (depth = 6n + 4), BN-ReLU, global average pooling
and a linear head. Optional stochastic depth (Huang et al., ECCV 2016) on each block's
residual branch."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from awsaa.models.registry import init_weights, linear_drop_rates, register


class WideBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 added to the
    input, or to a 1x1 projection of the activated input when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.project = nn.Conv2d(cin, cout, 1, stride, 0, bias=False) if (cin != cout or stride != 1) else None
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        shortcut = self.project(o) if self.project is not None else x
        y = self.conv2(self.dropout(torch.relu(self.bn2(self.conv1(o)))))
        return shortcut + self.drop_path(y)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen``; adaptive pooling at the end, so 28x28 inputs work too."""

    def __init__(self, depth: int, widen: int, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        rates = iter(linear_drop_rates(drop_path, 3 * n))
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        cin = 16
        for group, cout in enumerate(widths):
            for b in range(n):
                stride = 2 if (group > 0 and b == 0) else 1
                blocks.append(WideBlock(cin, cout, stride, dropout, next(rates)))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@register("wrn10_1")
def wrn10_1(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0,
            drop_path: float = 0.0) -> WideResNet:
    """WRN-10-1 (78k parameters): small enough to train on Fashion-MNIST on a CPU in minutes."""
    return WideResNet(10, 1, num_classes, in_channels, dropout, drop_path)


@register("wrn16_2")
def wrn16_2(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0,
            drop_path: float = 0.0) -> WideResNet:
    """WRN-16-2 (0.69M parameters)."""
    return WideResNet(16, 2, num_classes, in_channels, dropout, drop_path)


@register("wrn28_10")
def wrn28_10(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0,
             drop_path: float = 0.0) -> WideResNet:
    """WRN-28-10 (36.5M parameters)."""
    return WideResNet(28, 10, num_classes, in_channels, dropout, drop_path)


@register("wrn40_2")
def wrn40_2(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0,
            drop_path: float = 0.0) -> WideResNet:
    """WRN-40-2 (2.2M parameters)."""
    return WideResNet(40, 2, num_classes, in_channels, dropout, drop_path)
