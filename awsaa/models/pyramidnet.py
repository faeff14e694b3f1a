"""PyramidNet (Han et al., CVPR 2017) with bottleneck blocks and ShakeDrop (Yamada et al.,
2018): the width grows by alpha / (number of blocks) per block; each residual branch is
scaled by a random per-sample factor whose chance of being "shaken" rises linearly to 0.5."""

from __future__ import annotations

import torch
from torch import nn

from awsaa.models.registry import init_weights, register


class ShakeDropScale(torch.autograd.Function):
    """Forward ``(b + alpha - b alpha) x``, backward ``(b + beta - b beta) grad``, with
    ``b ~ Bernoulli(1 - p)``, ``alpha ~ U[-1, 1]``, ``beta ~ U[0, 1]`` per sample."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p_drop: float, training: bool) -> torch.Tensor:
        if not training:
            return (1 - p_drop) * x
        shape = (x.shape[0], 1, 1, 1)
        keep = torch.bernoulli(torch.full(shape, 1 - p_drop, device=x.device, dtype=x.dtype))
        alpha = torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(-1, 1)
        ctx.save_for_backward(keep)
        ctx.training = True
        return (keep + alpha - keep * alpha) * x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        beta = torch.rand_like(keep)
        return (keep + beta - keep * beta) * grad, None, None


class PyramidBottleneck(nn.Module):
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
        y = ShakeDropScale.apply(self.branch(x), self.p_drop, self.training)
        shortcut = nn.functional.avg_pool2d(x, 2, ceil_mode=True) if self.stride != 1 else x
        if self.cout != self.cin:  # zero-padded channels
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.cout - self.cin))
        return y + shortcut


class PyramidNet(nn.Module):
    def __init__(self, depth: int, alpha: float, num_classes: int = 10, in_channels: int = 3,
                 max_drop: float = 0.5) -> None:
        super().__init__()
        n = (depth - 2) // 9  # bottleneck blocks per stage
        total = 3 * n
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin, width = [], 16, 16.0
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
    return PyramidNet(272, 200, num_classes, in_channels)
