"""Typed configs, loaded from YAML and validated by pydantic, with one-line errors naming the key.

A config is a tree of pydantic dataclasses (``extra="forbid"``, strict scalar types: ``2.5``
is not an integer, ``"yes"`` is not a boolean, an integer is a number). Field constraints
(``Field(ge=1)``) and ``Literal`` choices say what each value may be, and every field's
``description`` says what it means; ``__post_init__`` holds what relates two values and the
names checked against the package's registries (models, datasets, augmentations).
:func:`from_dict` builds a config from plain data (YAML, JSON, command-line overrides) and
turns pydantic's first error into one line naming the dotted key (``config train.yaml:
optim.lr must be > 0, got -0.1``; an unknown key with a did-you-mean hint).
``dataclasses.replace`` validates the new values too. :func:`json_schema` gives the JSON
schema editors validate a config file with (``configs/schema/``).

YAML is read by :func:`parse_yaml`: PyYAML's safe loader (no tags that build objects), with
YAML 1.2's numbers (``5e-4`` is a float, not a string), duplicate keys refused (YAML leaves
them undefined; PyYAML would keep the last) and alias expansion bounded (a "billion laughs"
document is refused, not expanded).

The package, each module importing only those above it:

``fields``   the shared field types (strict scalars, bounded numbers) and ``SECTION``
``errors``   :class:`ConfigError`, pydantic's errors as one line, :func:`from_dict`,
             :func:`json_schema`, :func:`to_dict`, :func:`config_hash`
``yaml_io``  :func:`parse_yaml`, :func:`read_yaml`, :func:`load`
``train``    :class:`TrainConfig` and its sections (:class:`OptimConfig`, :class:`DataConfig`)
``search``   :class:`SearchConfig` and its sections, and the result rules
"""

from awsaa.config.errors import ConfigError, config_hash, from_dict, json_schema, to_dict
from awsaa.config.fields import RESOURCE_STEP, SECTION, SEED_END
from awsaa.config.search import (
    RESULT_RULES,
    AgentConfig,
    DensityConfig,
    FinetuneConfig,
    NasConfig,
    PretrainConfig,
    ResultRule,
    SearchConfig,
    WorkersConfig,
)
from awsaa.config.train import DataConfig, OptimConfig, TrainConfig
from awsaa.config.yaml_io import MAX_YAML_NODES, load, parse_yaml, read_yaml
from awsaa.config.yaml_io import _Loader as _Loader  # not public: the tests check the YAML loader itself

__all__ = [
    "MAX_YAML_NODES",
    "RESOURCE_STEP",
    "RESULT_RULES",
    "SECTION",
    "SEED_END",
    "AgentConfig",
    "ConfigError",
    "DataConfig",
    "DensityConfig",
    "FinetuneConfig",
    "NasConfig",
    "OptimConfig",
    "PretrainConfig",
    "ResultRule",
    "SearchConfig",
    "TrainConfig",
    "WorkersConfig",
    "config_hash",
    "from_dict",
    "json_schema",
    "load",
    "parse_yaml",
    "read_yaml",
    "to_dict",
]
