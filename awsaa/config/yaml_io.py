"""Reading a config from YAML: :func:`parse_yaml` (PyYAML's safe loader with YAML 1.2's
numbers and booleans, duplicate keys refused, alias expansion bounded), :func:`read_yaml`
(a file) and :func:`load` (a file and dotted-key overrides, as a config)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml

from awsaa.config.errors import ConfigError, from_dict
from awsaa.fileio import read_text

T = TypeVar("T")

MAX_YAML_NODES = 100_000  # a config has ~100; far more is an alias bomb or not a config


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 floats and duplicate keys refused."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


# PyYAML follows YAML 1.1, where yes/no/on/off/y/n are booleans: "hflip: no" would pass for
# false and a run name "on" become True. As in YAML 1.2 only true/false are (in any case).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
# PyYAML follows YAML 1.1, where a float needs a dot: "5e-4" would stay a string.
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def _count_nodes(data: Any, what: str) -> None:
    """Refuse data whose expanded tree (aliases counted at every use) exceeds MAX_YAML_NODES."""
    stack, n = [data], 0
    while stack:
        x = stack.pop()
        n += 1
        if n > MAX_YAML_NODES:
            raise ConfigError(f"{what} expands to more than {MAX_YAML_NODES:,} values (aliases that "
                              f"repeat themselves?); a config is far smaller")
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def parse_yaml(text: str, what: str) -> Any:
    """YAML text as plain data, every failure one line naming ``what`` and where."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{what} is not valid YAML{where}: {' '.join(str(problem).split())[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply to be read") from None
    _count_nodes(data, what)
    return data


def read_yaml(path: str | os.PathLike, max_bytes: int = 2**20) -> Any:
    path = Path(path)
    return parse_yaml(read_text(path, "config file", ConfigError, max_bytes=max_bytes), f"config file {path}")


def load(cls: type[T], path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> T:
    """Load ``cls`` from a YAML file, with dotted-key ``overrides`` applied on top."""
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        if not all(parents) or not leaf:
            raise ConfigError(f"override {dotted!r} is not a dotted key such as optim.lr")
        for i, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted}: {'.'.join(parents[:i + 1])} is a value, not a section")
        node[leaf] = value
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"config {path}: {e}") from None
