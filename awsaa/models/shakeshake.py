"""Shake-Shake regularization (Gastaldi, 2017), the CIFAR 26-layer 2xNd networks: three
stages of four blocks, each block two residual branches mixed with a random alpha per
sample in the forward pass and an independent random beta in the backward pass."""

from __future__ import annotations

import torch
from torch import nn

from awsaa.models.registry import init_weights, register


class ShakeShakeMix(torch.autograd.Function):
    """``alpha * a + (1 - alpha) * b`` forward, ``beta`` / ``1 - beta`` backward (per sample)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, training: bool) -> torch.Tensor:
        ctx.training = training
        if not training:
            return 0.5 * (a + b)
        alpha = torch.rand(a.shape[0], 1, 1, 1, device=a.device, dtype=a.dtype)
        return alpha * a + (1 - alpha) * b

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if not ctx.training:
            return 0.5 * grad, 0.5 * grad, None
        beta = torch.rand(grad.shape[0], 1, 1, 1, device=grad.device, dtype=grad.dtype)
        return beta * grad, (1 - beta) * grad, None


def _branch(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(inplace=False), nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
    )


class ShortcutProjection(nn.Module):
    """Two strided 1x1 paths (the second shifted by one pixel), concatenated, then BN."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(cin, cout - cout // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        a = self.conv1(nn.functional.avg_pool2d(x, 1, self.stride))
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        b = self.conv2(nn.functional.avg_pool2d(shifted, 1, self.stride))
        return self.bn(torch.cat([a, b], dim=1))


class ShakeBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.branch1 = _branch(cin, cout, stride)
        self.branch2 = _branch(cin, cout, stride)
        self.shortcut = ShortcutProjection(cin, cout, stride) if (cin != cout or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = ShakeShakeMix.apply(self.branch1(x), self.branch2(x), self.training)
        return (self.shortcut(x) if self.shortcut is not None else x) + mixed


class ShakeShake(nn.Module):
    def __init__(self, depth: int, width: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for b in range(n):
                blocks.append(ShakeBlock(cin, cout, 2 if (stage > 0 and b == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.blocks(self.bn(self.conv(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _shake(width: int):
    def build(num_classes: int = 10, in_channels: int = 3):
        return ShakeShake(26, width, num_classes, in_channels)

    return build


for _w in (32, 96, 112):
    register(f"shakeshake26_2x{_w}d")(_shake(_w))
