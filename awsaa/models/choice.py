"""The networks of the architecture space (:mod:`awsaa.arch`): one path as a standalone network
(:class:`ChoiceNet`, what ``awsaa-train --model arch.json`` trains) and the supernet that holds
every op of every block (:class:`SuperNet`), whose weights are shared across architectures
the way ProxylessNAS shares them: each op keeps its own weights and batch norms; the stem and
the head are shared by every path. :meth:`SuperNet.extract` copies one path's weights into a
:class:`ChoiceNet`."""

from __future__ import annotations

import torch
from torch import nn

from awsaa.arch import STEM, WIDTHS, Arch, Slot, mb_params, slots
from awsaa.models.registry import init_weights
from awsaa.models.wrn import WideBlock


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (BN, ReLU6), ``k`` x ``k`` depthwise with the block's
    stride (BN, ReLU6), 1x1 projection (BN); the identity shortcut where the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True),
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.ReLU6(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = cin == cout and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def make_op(op: str, slot: Slot) -> nn.Module:
    """The module of ``op`` in ``slot`` (``zero``: the identity)."""
    if op == "wrn":
        return WideBlock(slot.cin, slot.cout, slot.stride)
    if op == "zero":
        return nn.Identity()
    kernel, expansion = mb_params(op)
    return MBConv(slot.cin, slot.cout, slot.stride, kernel, expansion)


class _Ends(nn.Module):
    """The stem and the head every path shares."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, STEM, 3, 1, 1, bias=False), nn.BatchNorm2d(STEM),
                                  nn.ReLU(inplace=True))
        self.bn = nn.BatchNorm2d(WIDTHS[-1])
        self.fc = nn.Linear(WIDTHS[-1], num_classes)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class ChoiceNet(_Ends):
    """One architecture of the space as a standalone network."""

    def __init__(self, arch: Arch, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels)
        self.arch = arch
        self.blocks = nn.Sequential(*(make_op(op, slot) for op, slot in zip(arch.ops, slots(), strict=True)))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class SuperNet(_Ends):
    """Every op of every block; :meth:`forward` runs one path."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels)
        self.choices = nn.ModuleList(
            nn.ModuleDict({op: make_op(op, slot) for op in slot.choices if op != "zero"}) for slot in slots())
        init_weights(self)

    def path(self, arch: Arch) -> list[nn.Module | None]:
        """The module of ``arch``'s op in each block (None for ``zero``)."""
        out: list[nn.Module | None] = []
        for op, block in zip(arch.ops, self.choices, strict=True):
            assert isinstance(block, nn.ModuleDict)
            out.append(None if op == "zero" else block[op])
        return out

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        x = self.stem(x)
        for module in self.path(arch):
            if module is not None:
                x = module(x)
        return self.head(x)

    def path_parameters(self, arch: Arch) -> list[nn.Parameter]:
        """The parameters ``arch`` uses: the shared stem and head, and its op in each block."""
        ops = [m for m in self.path(arch) if m is not None]
        return [*self.stem.parameters(), *(p for m in ops for p in m.parameters()), *self.bn.parameters(),
                *self.fc.parameters()]

    def extract(self, arch: Arch) -> ChoiceNet:
        """``arch`` as a standalone network holding a copy of its weights and batch-norm
        statistics from the supernet."""
        net = ChoiceNet(arch, self.num_classes, self.in_channels)
        for name in ("stem", "bn", "fc"):
            getattr(net, name).load_state_dict(getattr(self, name).state_dict())
        for child, module in zip(net.blocks, self.path(arch), strict=True):
            if module is not None:
                child.load_state_dict(module.state_dict())
        return net


def op_parameter_counts() -> list[dict[str, int]]:
    """Per block, each op's parameter count (``zero``: 0)."""
    return [{op: sum(p.numel() for p in make_op(op, slot).parameters()) for op in slot.choices} for slot in slots()]


__all__ = ["ChoiceNet", "MBConv", "SuperNet", "make_op", "op_parameter_counts"]
