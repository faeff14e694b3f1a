"""PyramidNet (Han et al., "Deep Pyramidal Residual Networks", CVPR 2017), the CIFAR
bottleneck variant, with ShakeDrop (Yamada et al., "ShakeDrop Regularization for Deep
Residual Learning", IEEE Access 2019).

The width grows by alpha / (number of blocks) after every block, from 16 to 16 + alpha
(times 4 at the bottleneck outputs); the shortcut is an average pool where the block is
strided, zero-padded to the new width. Each residual branch is scaled per sample by
``b + (1 - b) * alpha`` in the forward pass and ``b + (1 - b) * beta`` in the backward
pass, ``b ~ Bernoulli(1 - p)``, ``alpha ~ U[-1, 1]``, ``beta ~ U[0, 1]``, where the death
probability ``p`` rises linearly with the block index to 0.5 at the last block; the
branch is scaled by its expectation ``1 - p`` at evaluation."""

from __future__ import annotations

import torch
from torch import nn

from awsaa.models.registry import init_weights, register


class ShakeDropScale(torch.autograd.Function):
    """Training-time ShakeDrop on a residual branch ``x`` with death probability ``p_drop``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p_drop: float) -> torch.Tensor:
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        keep = torch.bernoulli(torch.full(shape, 1.0 - p_drop, device=x.device))
        alpha = torch.empty(shape, device=x.device).uniform_(-1.0, 1.0)
        ctx.save_for_backward(keep)
        return (keep + (1 - keep) * alpha).to(x.dtype) * x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        beta = torch.rand_like(keep)
        return (keep + (1 - keep) * beta).to(grad.dtype) * grad, None


def shake_drop(x: torch.Tensor, p_drop: float, training: bool) -> torch.Tensor:
    """ShakeDrop in training, the expected scale ``1 - p_drop`` in evaluation."""
    return ShakeDropScale.apply(x, p_drop) if training else (1.0 - p_drop) * x


class PyramidBottleneck(nn.Module):
    """BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN with ShakeDrop, plus the (pooled,
    zero-padded) input."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, p_drop: float) -> None:
        super().__init__()
        cout = width * self.expansion
        self.branch = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.stride, self.cin, self.cout, self.p_drop = stride, cin, cout, p_drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = shake_drop(self.branch(x), self.p_drop, self.training)
        # ceil_mode matches the strided conv's output size on odd inputs (7x7 -> 4x4).
        shortcut = nn.functional.avg_pool2d(x, 2, ceil_mode=True) if self.stride != 1 else x
        if self.cout != self.cin:
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.cout - self.cin))
        return y + shortcut

    def extra_repr(self) -> str:
        return f"p_drop={self.p_drop:.4f}"


class PyramidNet(nn.Module):
    """Bottleneck PyramidNet of ``depth`` = 9n + 2 layers and widening ``alpha``, with
    ShakeDrop up to ``max_drop``; adaptive pooling at the end, so 28x28 inputs work too."""

    def __init__(self, depth: int, alpha: float, num_classes: int = 10, in_channels: int = 3,
                 max_drop: float = 0.5) -> None:
        super().__init__()
        if depth < 11 or (depth - 2) % 9:
            raise ValueError(f"bottleneck PyramidNet depth must be 9n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 9
        total = 3 * n
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        cin, width = 16, 16.0
        for i in range(total):
            width += alpha / total
            stride = 2 if i in (n, 2 * n) else 1
            block = PyramidBottleneck(cin, round(width), stride, max_drop * (i + 1) / total)
            blocks.append(block)
            cin = block.cout
        self.blocks = nn.Sequential(*blocks)
        self.bn_out = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_out(self.blocks(self.bn(self.conv(x)))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@register("pyramidnet272_a200")
def pyramidnet272_a200(num_classes: int = 10, in_channels: int = 3) -> PyramidNet:
    """PyramidNet-272, alpha 200, bottleneck, ShakeDrop (26.0M parameters)."""
    return PyramidNet(272, 200, num_classes, in_channels)
