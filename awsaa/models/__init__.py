"""The model zoo, a timm-style registry: ``awsaa.models.create(name, num_classes, in_channels)``.

CIFAR-style networks (32x32, and 28x28 Fashion-MNIST with ``in_channels=1``): ``wrn10_1``,
``wrn16_2``, ``wrn40_2``, ``wrn28_10``, ``shakeshake26_2x{32,96,112}d``,
``pyramidnet272_a200``; ImageNet: ``resnet50``, ``resnet200``. The WRNs and ResNets take
``drop_path`` (stochastic depth).
"""

from awsaa.models import pyramidnet, resnet, shakeshake, wrn  # noqa: F401  (registers the models)
from awsaa.models.registry import create, list_models, register

__all__ = ["create", "list_models", "register"]
