"""The model zoo: ``awsaa.models.create(name, num_classes, in_channels)``."""

from awsaa.models import pyramidnet, resnet, shakeshake, wrn  # noqa: F401  (registers the models)
from awsaa.models.registry import create, list_models, register

__all__ = ["create", "list_models", "register"]
