"""Shake-Shake regularization (Gastaldi, "Shake-Shake regularization", 2017), the CIFAR
26-layer "2xNd" networks: a 3x3 stem with 16 channels, three stages of four blocks of
width N, 2N and 4N, each block two residual branches ReLU-conv3x3-BN-ReLU-conv3x3-BN
mixed with a random per-sample alpha in the forward pass and an independent random
per-sample beta in the backward pass ("Shake-Shake-Image"); 0.5 and 0.5 at evaluation."""

from __future__ import annotations

import torch
from torch import nn

from awsaa.models.registry import init_weights, register


def _per_sample_uniform(like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) of shape (N, 1, 1, 1), drawn in float32 and cast to ``like``'s dtype."""
    return torch.rand(like.shape[0], *([1] * (like.dim() - 1)), device=like.device).to(like.dtype)


class ShakeShakeMix(torch.autograd.Function):
    """Training-time mix of two branches: ``alpha * a + (1 - alpha) * b`` forward, and the
    gradient split ``beta`` / ``1 - beta`` backward, with ``alpha`` and ``beta`` drawn
    independently from U[0, 1) per sample."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        alpha = _per_sample_uniform(a)
        return alpha * a + (1 - alpha) * b

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta = _per_sample_uniform(grad)
        return beta * grad, (1 - beta) * grad


def shake_shake(a: torch.Tensor, b: torch.Tensor, training: bool) -> torch.Tensor:
    """Mix two branches: random in training, their plain average in evaluation."""
    return ShakeShakeMix.apply(a, b) if training else 0.5 * (a + b)


def _branch(cin: int, cout: int, stride: int) -> nn.Sequential:
    # The first ReLU must not be in place: the other branch and the shortcut read the input too.
    return nn.Sequential(
        nn.ReLU(inplace=False), nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
    )


class ShortcutProjection(nn.Module):
    """The shortcut where the shape changes: ReLU, then two paths each a strided 1x1
    subsampling (avg-pool of size 1) and a 1x1 conv to half the output channels, the second
    path shifted by one pixel so that the two see different pixels; concatenated, then BN."""

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
    """Two residual branches mixed by :func:`shake_shake`, plus the (projected) input."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.branch1 = _branch(cin, cout, stride)
        self.branch2 = _branch(cin, cout, stride)
        self.shortcut = ShortcutProjection(cin, cout, stride) if (cin != cout or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = shake_shake(self.branch1(x), self.branch2(x), self.training)
        return (self.shortcut(x) if self.shortcut is not None else x) + mixed


class ShakeShake(nn.Module):
    """Shake-Shake ResNet of ``depth`` = 6n + 2 layers and base width ``width`` (the "2x{width}d"
    networks); adaptive pooling at the end, so 28x28 inputs work too."""

    def __init__(self, depth: int, width: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"Shake-Shake depth must be 6n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        cin = 16
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


@register("shakeshake26_2x32d")
def shakeshake26_2x32d(num_classes: int = 10, in_channels: int = 3) -> ShakeShake:
    """Shake-Shake 26 2x32d (2.9M parameters)."""
    return ShakeShake(26, 32, num_classes, in_channels)


@register("shakeshake26_2x96d")
def shakeshake26_2x96d(num_classes: int = 10, in_channels: int = 3) -> ShakeShake:
    """Shake-Shake 26 2x96d (26.2M parameters)."""
    return ShakeShake(26, 96, num_classes, in_channels)


@register("shakeshake26_2x112d")
def shakeshake26_2x112d(num_classes: int = 10, in_channels: int = 3) -> ShakeShake:
    """Shake-Shake 26 2x112d (35.6M parameters)."""
    return ShakeShake(26, 112, num_classes, in_channels)
