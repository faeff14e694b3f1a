"""Wide Residual Networks (Zagoruyko & Komodakis, BMVC 2016), the CIFAR variant:
pre-activation basic blocks, three groups of width 16k, 32k, 64k, depth = 6n + 4."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from awsaa.models.registry import init_weights, register


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, plus the (projected) input."""

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
        y = self.conv1(o)
        y = self.conv2(self.dropout(torch.relu(self.bn2(y))))
        return shortcut + self.drop_path(y)


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, cin, total, i = [], widths[0], 3 * n, 0
        for g, cout in enumerate(widths[1:]):
            for b in range(n):
                blocks.append(WideBlock(cin, cout, 2 if (g > 0 and b == 0) else 1, dropout,
                                        drop_path * i / max(total - 1, 1)))
                cin, i = cout, i + 1
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _wrn(depth: int, widen: int):
    def build(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0, drop_path: float = 0.0):
        return WideResNet(depth, widen, num_classes, in_channels, dropout, drop_path)

    build.__doc__ = f"WRN-{depth}-{widen}"
    return build


for _depth, _widen in ((10, 1), (16, 2), (28, 10), (40, 2)):
    register(f"wrn{_depth}_{_widen}")(_wrn(_depth, _widen))
