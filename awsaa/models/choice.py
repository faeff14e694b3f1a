"""The networks of the architecture space (:mod:`awsaa.arch`): one path as a standalone network
(:class:`ChoiceNet`, what ``awsaa-train --model arch.json`` trains) and the supernet that holds
every op of every block (:class:`SuperNet`), whose weights are shared across architectures
the way ProxylessNAS shares them: each op keeps its own weights and batch norms; the stem and
the head are shared by every path. :meth:`SuperNet.extract` copies one path's weights into a
:class:`ChoiceNet`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from awsaa.arch import OPS, STEM, WIDTHS, Arch, Slot, mb_params, slots
from awsaa.models.registry import init_weights, register
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
    """Every op of every block; :meth:`forward` runs one path.

    The path: the one given, else the one set with :meth:`set_path` (a buffer, so it travels
    with the weights: a fine-tune's snapshot evaluated elsewhere runs the same path), else one
    drawn uniformly per forward from the supernet's own generator (:meth:`seed_paths`), as
    stage 1 of NAS + AWS trains it: one uniformly sampled path per batch. With
    ``arch_logits`` set (gradient-based NAS + AWS: one tensor per block over the ops it takes,
    not parameters of the network), a training forward draws its path by Gumbel-max from them
    instead, and scales each block's output by a straight-through gate (1 in value, the
    Gumbel-softmax weight of the op drawn in gradient; GDAS's estimator), so a loss's gradient
    reaches the logits. ``op_counts`` (blocks x :data:`~awsaa.arch.OPS`, a buffer) counts, in
    training mode, how often each op of each block was drawn, ``zero`` included."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels)
        self.choices = nn.ModuleList(
            nn.ModuleDict({op: make_op(op, slot) for op in slot.choices if op != "zero"}) for slot in slots())
        init_weights(self)
        n = len(slots())
        self.active: torch.Tensor
        self.op_counts: torch.Tensor
        self.register_buffer("active", torch.full((n,), -1, dtype=torch.long))
        self.register_buffer("op_counts", torch.zeros(n, len(OPS), dtype=torch.long))
        self.paths = torch.Generator().manual_seed(0)
        self.arch_logits: list[torch.Tensor] | None = None
        self.tau = 1.0  # the Gumbel-softmax temperature of the gates
        self.counting = True  # off: a training-mode forward that trains no weights (the logits' steps)

    def seed_paths(self, seed: int) -> None:
        """Seed the draws of the paths (stage 1)."""
        self.paths.manual_seed(seed)

    def set_path(self, arch: Arch | None) -> None:
        """Run ``arch`` from now on (None: draw a path per forward)."""
        with torch.no_grad():
            if arch is None:
                self.active.fill_(-1)
            else:
                self.active.copy_(torch.tensor([OPS.index(op) for op in arch.ops]))

    def active_path(self) -> Arch | None:
        """The path set with :meth:`set_path` (or loaded with the weights), if any."""
        idx = self.active.tolist()
        return None if idx[0] < 0 else Arch(tuple(OPS[i] for i in idx))

    def sample_path(self) -> Arch:
        """A path drawn uniformly: each block's op uniformly from the ops it takes."""
        ops = []
        for slot in slots():
            i = int(torch.randint(len(slot.choices), (), generator=self.paths))
            ops.append(slot.choices[i])
        return Arch(tuple(ops))

    def gumbel_path(self) -> tuple[Arch, list[torch.Tensor]]:
        """A path drawn by Gumbel-max from ``arch_logits``, and each block's straight-through gate."""
        assert self.arch_logits is not None
        ops, gates = [], []
        for slot, logits in zip(slots(), self.arch_logits, strict=True):
            u = torch.rand(len(slot.choices), generator=self.paths).clamp_(1e-10, 1 - 1e-10)
            y = (logits - torch.log(-torch.log(u)).to(logits)) / self.tau
            k = int(y.argmax())
            w = torch.softmax(y, 0)[k]
            gates.append(w - w.detach() + 1.0)
            ops.append(slot.choices[k])
        return Arch(tuple(ops)), gates

    def path(self, arch: Arch) -> list[nn.Module | None]:
        """The module of ``arch``'s op in each block (None for ``zero``)."""
        out: list[nn.Module | None] = []
        for op, block in zip(arch.ops, self.choices, strict=True):
            assert isinstance(block, nn.ModuleDict)
            out.append(None if op == "zero" else block[op])
        return out

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        gates: list[torch.Tensor] | None = None
        if arch is None:
            arch = self.active_path()
            if arch is None:
                if self.training and self.arch_logits is not None:
                    arch, gates = self.gumbel_path()
                else:
                    arch = self.sample_path()
                if self.training and self.counting:
                    with torch.no_grad():
                        for i, op in enumerate(arch.ops):
                            self.op_counts[i, OPS.index(op)] += 1
        x = self.stem(x)
        for i, module in enumerate(self.path(arch)):
            if module is not None:
                x = module(x)
            if gates is not None:
                x = x * gates[i].to(x.dtype)
        return self.head(x)

    @staticmethod
    def _on_path(arch: Arch, keys: Iterable[str]) -> set[str]:
        """Which of a supernet's state keys a forward on ``arch`` reads."""
        ops = tuple(f"choices.{i}.{op}." for i, op in enumerate(arch.ops) if op != "zero")
        return {k for k in keys if k == "active" or k.startswith(("stem.", "bn.", "fc.", *ops))}

    def path_state_dict(self) -> dict[str, torch.Tensor]:
        """The state a forward on the path set with :meth:`set_path` reads: the stem, the path's
        ops, the head and the path itself, a fifth to a third of the whole supernet's. What a
        fine-tune's snapshot of each epoch needs to be evaluated on another worker."""
        arch = self.active_path()
        if arch is None:
            raise ValueError("no path is set: set_path first")
        state = self.state_dict()
        keys = self._on_path(arch, state)
        return {k: v for k, v in state.items() if k in keys}

    def load_path_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a :meth:`path_state_dict` (the path and its weights; the other ops keep theirs,
        which its forward never reads). Refused unless it holds exactly that path's keys."""
        if "active" not in state:
            raise ValueError("not a path's state: it has no 'active' path")
        arch = Arch(tuple(OPS[i] for i in state["active"].tolist()))
        if set(state) != self._on_path(arch, self.state_dict()):
            raise ValueError(f"not the state of path {arch.describe()}: its keys differ")
        self.load_state_dict(state, strict=False)

    def path_parameters(self, arch: Arch) -> list[nn.Parameter]:
        """The parameters ``arch`` uses: the shared stem and head, and its op in each block."""
        ops = [m for m in self.path(arch) if m is not None]
        return [*self.stem.parameters(), *(p for m in ops for p in m.parameters()), *self.bn.parameters(),
                *self.fc.parameters()]

    def path_batchnorms(self, arch: Arch) -> list[nn.BatchNorm2d]:
        """The batch norms ``arch`` runs through: the stem's, its ops', the last one."""
        mods = [self.stem, *(m for m in self.path(arch) if m is not None), self.bn]
        return [b for m in mods for b in m.modules() if isinstance(b, nn.BatchNorm2d)]

    @torch.no_grad()
    def recalibrate(self, arch: Arch, batches: Iterable[torch.Tensor]) -> int:
        """Recompute the batch-norm statistics of ``arch``'s path from ``batches`` (inputs as the
        network sees them), as once-for-all does for a sub-network: the statistics the supernet
        kept are a mixture over every path that ran through a shared batch norm, not this
        path's. Each statistic becomes the plain average over the batches; the weights are not
        touched. Returns the number of batches."""
        norms = self.path_batchnorms(arch)
        momenta = [b.momentum for b in norms]
        was_training = self.training
        for b in norms:
            b.reset_running_stats()
            b.momentum = None  # a cumulative average
        self.train()
        n = 0
        try:
            for x in batches:
                self(x, arch)
                n += 1
        finally:
            for b, m in zip(norms, momenta, strict=True):
                b.momentum = m
            self.train(was_training)
        return n

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


@register("supernet")
def supernet(num_classes: int = 10, in_channels: int = 3) -> SuperNet:
    """The supernet of :mod:`awsaa.arch`'s space: what a NAS + AWS search (``nas:``) trains in
    stage 1, one uniformly drawn path per batch."""
    return SuperNet(num_classes, in_channels)


def op_parameter_counts() -> list[dict[str, int]]:
    """Per block, each op's parameter count (``zero``: 0)."""
    return [{op: sum(p.numel() for p in make_op(op, slot).parameters()) for op in slot.choices} for slot in slots()]


__all__ = ["ChoiceNet", "MBConv", "SuperNet", "make_op", "op_parameter_counts"]
