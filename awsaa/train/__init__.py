"""Training: the trainer, its augmentation pipeline and checkpoints (plain torch, no Ray)."""

from awsaa.train.trainer import EpochStats, Trainer

__all__ = ["EpochStats", "Trainer"]
