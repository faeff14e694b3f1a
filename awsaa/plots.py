"""Figures: a policy's probability heatmap and a gallery of the ops (matplotlib, Agg)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from awsaa.augment import tensor_ops
from awsaa.augment.space import SearchSpace
from awsaa.data import load_dataset
from awsaa.fileio import atomic_open
from awsaa.policy import Policy


def _pyplot():
    # The plotting backend, imported on first use: matplotlib is slow to import and only the
    # end of a search and `awsaa-policy plot/gallery` draw anything.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".").lower().replace("jpg", "jpeg"), dpi=120,
                    bbox_inches="tight")


def plot_policy(policy: Policy, path: str | os.PathLike, title: str = "") -> None:
    """Heatmap of ``p(op1, op2)`` with op labels on both axes; the colour scale is in
    multiples of the uniform probability, so 1 means 'as likely as under the shared policy'."""
    plt = _pyplot()
    space = policy.space
    k = space.num_ops
    ratio = (policy.probs() * space.num_pairs).numpy()
    labels = [op.label for op in space.ops]
    size = max(6.0, 0.28 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(ratio, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    ax.set_xlabel("second op")
    ax.set_ylabel("first op")
    h = policy.entropy()
    ax.set_title(f"{title}\nentropy {h:.3f} nats (uniform {math.log(space.num_pairs):.3f})".strip())
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="probability / uniform probability")
    _save(fig, path)
    plt.close(fig)


def plot_op_gallery(path: str | os.PathLike, dataset: str = "fashion_mnist", dataroot=None,
                    n_images: int = 4, seed: int = 0, download: bool = False) -> None:
    """Every op of the default space on ``n_images`` test images (signs alternate +, -)."""
    plt = _pyplot()
    ds = load_dataset(dataset, dataroot, download)
    g = torch.Generator().manual_seed(seed)
    images = ds.test.images[torch.randperm(len(ds.test), generator=g)[:n_images]]
    signs = torch.tensor([1 if i % 2 == 0 else -1 for i in range(len(images))])
    space = SearchSpace.default()
    cells = [("original", images)]
    cells += [(op.label, tensor_ops.apply_op(images, op, signs, ds.info.fill)) for op in space.ops]
    cols = 6
    rows = math.ceil(len(cells) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.75 * n_images, rows * 0.95))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, batch) in zip(axes.flat, cells, strict=False):
        strip = torch.cat(list(batch), dim=2)  # C, H, n*W
        img = strip.permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(label, fontsize=8)
    fig.suptitle(f"the {space.num_ops} ops on {dataset} test images (signed ops: +, -, +, ...)")
    _save(fig, path)
    plt.close(fig)


def plot_rewards(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Per loop: every trajectory's reward (dots), their mean and the baseline (lines)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    loops = [h["loop"] for h in history]
    for h in history:
        ax.scatter([h["loop"]] * len(h["rewards"]), h["rewards"], s=6, color="0.6")
    ax.plot(loops, [h["mean_reward"] if h["mean_reward"] is not None else float("nan") for h in history],
            label="mean reward", color="C0")
    ax.plot(loops, [h["baseline"] if h["baseline"] is not None else float("nan") for h in history],
            label="baseline", color="C1", linestyle="--")
    ax.set_xlabel("loop")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title)
    ax.legend()
    _save(fig, path)
    plt.close(fig)
