"""Every augmentation op space of the package, in one place: AWS's 36-op search space
(``space``) with a PIL reference (``pil_ops``) and a batched tensor path (``tensor_ops``), and
Fast AutoAugment's op space and published policies (``fast_autoaugment``), which run through
the same kernels. One row per op type in ``table`` says what each backend does with it; the
kernels live by family in ``kernels``."""

from awsaa.augment.space import ALL_OPS, OpSpec, SearchSpace

__all__ = ["ALL_OPS", "OpSpec", "SearchSpace"]
