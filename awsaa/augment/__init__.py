"""The search space and its ops: a PIL reference (``pil_ops``) and a batched tensor path (``tensor_ops``)."""

from awsaa.augment.space import ALL_OPS, OpSpec, SearchSpace

__all__ = ["ALL_OPS", "OpSpec", "SearchSpace"]
