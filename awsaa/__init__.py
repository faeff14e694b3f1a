"""awsaa: augmentation-policy search with Augmentation-Wise Weight Sharing (AWS AutoAugment)."""

import importlib as _importlib

import awsaa._start  # noqa: F401  (first: the working directory, and the tools' stop signals while they start)
from awsaa.augment.space import SearchSpace
from awsaa.errors import AWSAAError
from awsaa.policy import Policy
from awsaa.transforms import AWSAugment, Cutout

__version__ = "0.1.0"

__all__ = ["AWSAAError", "AWSAugment", "Cutout", "Policy", "SearchSpace", "__version__"]

# Subpackages reachable from ``import awsaa`` alone (``awsaa.models.create(...)``,
# ``awsaa.search.make_agent(...)``), imported on first use (PEP 562) so that ``import awsaa``
# stays cheap. ``awsaa.distributed`` and ``awsaa.cli`` need Ray and are imported by name.
_LAZY = ("augment", "config", "data", "models", "search", "train")


def __getattr__(name: str) -> object:
    if name in _LAZY:
        module = _importlib.import_module(f"awsaa.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'awsaa' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names and the subpackages (not the helpers this module uses)."""
    return sorted({*__all__, *_LAZY})
