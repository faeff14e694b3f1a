"""awsaa: augmentation-policy search with Augmentation-Wise Weight Sharing (AWS AutoAugment)."""

from awsaa.augment.space import SearchSpace
from awsaa.errors import AWSAAError
from awsaa.policy import Policy
from awsaa.transforms import AWSAugment, Cutout

__version__ = "0.1.0"

__all__ = ["AWSAAError", "AWSAugment", "Cutout", "Policy", "SearchSpace", "__version__"]
